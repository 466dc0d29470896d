import { jwtVerify } from 'jose';
import type { Db } from '../src/platform/db/transaction.js';
import { findServiceAccess } from '../src/services/service.repository.js';
import type { VerifySettings } from './baselines.js';

const WARM_UP_ITERATIONS = 20;
const ITERATIONS = 300;

export interface Breakdown {
  verifyUs: number;
  selectByIdUs: number;
  findServiceAccessUs: number;
}

type Steps = Record<keyof Breakdown, () => Promise<unknown>>;

/** Mean µs of each step; the steps take turns, so a burst of outside load hits all alike. */
async function meanMicros(steps: Steps): Promise<Breakdown> {
  const names = Object.keys(steps) as Array<keyof Breakdown>;
  const totals: Breakdown = { verifyUs: 0, selectByIdUs: 0, findServiceAccessUs: 0 };
  for (let i = 0; i < WARM_UP_ITERATIONS + ITERATIONS; i++) {
    for (const name of names) {
      const started = process.hrtime.bigint();
      await steps[name]();
      if (i >= WARM_UP_ITERATIONS)
        totals[name] += Number(process.hrtime.bigint() - started) / 1_000;
    }
  }
  for (const name of names) totals[name] /= ITERATIONS;
  return totals;
}

/**
 * The cost of each step of an authenticated read, one request at a time (no concurrency):
 * where one request's time goes, as opposed to how many requests fit in a second.
 */
export async function measureBreakdown(
  db: Db,
  verify: VerifySettings,
  token: string,
  serviceId: string,
): Promise<Breakdown> {
  const options = { algorithms: ['EdDSA'], issuer: verify.issuer, audience: verify.audience };
  const { payload } = await jwtVerify(token, verify.publicKey, options);
  const userId = String(payload.sub);
  return meanMicros({
    verifyUs: () => jwtVerify(token, verify.publicKey, options),
    selectByIdUs: () =>
      db.selectFrom('services').selectAll().where('id', '=', serviceId).executeTakeFirst(),
    findServiceAccessUs: () => findServiceAccess(db, serviceId, userId),
  });
}
