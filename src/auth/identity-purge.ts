import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Db } from '../platform/db/transaction.js';
import type { IdentityRetention } from './auth.config.js';
import { PURGE_TARGETS, purgeBatch, type PurgeTarget } from './identity-purge.repository.js';

// A run stops a target after this many full batches and leaves the rest to the next run, so
// one run never holds a worker for long after a long outage of the job.
const MAX_BATCHES_PER_TARGET = 100;

export type PurgeCounts = Record<PurgeTarget, number>;

/**
 * Deletes identity rows past their retention, target by target, in batches of
 * `batchSize` rows, each its own statement. Counts what went in
 * `switchyard_identity_rows_purged_total{table}` and one log line per run.
 */
export function createIdentityPurge(deps: {
  db: Db;
  logger: Logger;
  registry: Registry;
  retention: IdentityRetention;
}) {
  const { db, logger, retention } = deps;
  const purged = new Counter({
    name: 'switchyard_identity_rows_purged_total',
    help: 'Identity rows deleted past their retention, by kind',
    labelNames: ['table'] as const,
    registers: [deps.registry],
  });
  const cutoffs = {
    retentionDays: retention.days,
    signInFailureHours: retention.signInFailureHours,
  };

  async function purgeTarget(target: PurgeTarget, signal: AbortSignal | undefined) {
    let total = 0;
    for (let batch = 0; batch < MAX_BATCHES_PER_TARGET && signal?.aborted !== true; batch++) {
      const count = await purgeBatch(db, target, cutoffs, retention.batchSize);
      total += count;
      if (count < retention.batchSize) break;
    }
    if (total > 0) purged.inc({ table: target }, total);
    return total;
  }

  return {
    /** One pass over every target; answers the rows deleted per target. */
    async run(signal?: AbortSignal): Promise<PurgeCounts> {
      const started = performance.now();
      const counts = {} as PurgeCounts;
      for (const target of PURGE_TARGETS) counts[target] = await purgeTarget(target, signal);
      logger.info(
        { purged: counts, durationMs: Math.round(performance.now() - started) },
        'identity rows purged',
      );
      return counts;
    },
  };
}

export type IdentityPurge = ReturnType<typeof createIdentityPurge>;
