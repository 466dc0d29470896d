import { AppError } from '../platform/errors.js';
import type { JobDefinition } from '../platform/queue.js';
import type { Dependencies } from '../platform/dependencies.js';

/**
 * What identity asks a worker to mail: the verification token of a new sign-up, or, when
 * someone signs up with an address that already has an account, a notice to its owner.
 */
export type SignUpMailPayload =
  { kind: 'verify'; signUpId: string } | { kind: 'account_exists'; userId: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * identity.sign_up_mail: mails a sign-up's token (made here, so the queue never holds it) or
 * an existing owner's notice. A retry of a verification mail issues a fresh token.
 */
export const IDENTITY_SIGN_UP_MAIL: JobDefinition<SignUpMailPayload> = {
  name: 'identity.sign_up_mail',
  retryLimit: 5,
  retryDelaySeconds: 30,
  expireInSeconds: 120,
  parse(data) {
    const payload = (data ?? {}) as Record<string, unknown>;
    if (payload['kind'] === 'verify' && isUuid(payload['signUpId'])) {
      return { kind: 'verify', signUpId: payload['signUpId'] };
    }
    if (payload['kind'] === 'account_exists' && isUuid(payload['userId'])) {
      return { kind: 'account_exists', userId: payload['userId'] };
    }
    throw new AppError('VALIDATION_FAILED', 'identity.sign_up_mail payload is malformed');
  },
};

/**
 * identity.purge: deletes expired sessions and refresh tokens, spent sign-up tokens, dead
 * deny-list rows and old failed sign-in counters, in bounded batches. Scheduled; one runs at a
 * time across replicas, and running it twice deletes nothing more.
 */
export const IDENTITY_PURGE: JobDefinition<Record<string, never>> = {
  name: 'identity.purge',
  retryLimit: 2,
  retryDelaySeconds: 60,
  expireInSeconds: 900,
  policy: 'singleton',
  parse() {
    return {};
  },
};

function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** The cron line of the purge: every `minutes` minutes of each hour (60: on the hour). */
export function purgeCron(minutes: number): string {
  return minutes >= 60 ? '0 * * * *' : `*/${minutes} * * * *`;
}

type Timed = (job: string, work: () => Promise<void>) => Promise<void>;

/**
 * A worker's share of identity: sending sign-up mail and running the scheduled purge. The
 * schedule is kept in pg-boss, so every replica may set it and one job runs per slot.
 */
export async function startIdentityWork(
  deps: Pick<Dependencies, 'queue' | 'domain' | 'config'>,
  signal: AbortSignal,
  timed: Timed = (_job, work) => work(),
): Promise<void> {
  const { queue, domain } = deps;
  await queue.work(IDENTITY_SIGN_UP_MAIL, (data) =>
    timed(IDENTITY_SIGN_UP_MAIL.name, () => domain.signUp.sendMail(data)),
  );
  await queue.work(IDENTITY_PURGE, () =>
    timed(IDENTITY_PURGE.name, async () => {
      await domain.identityPurge.run(signal);
    }),
  );
  await queue.schedule(IDENTITY_PURGE, purgeCron(deps.config.auth.retention.everyMinutes), {});
}
