import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { KeyRing } from '../auth/keys.js';
import type { Db } from '../platform/db/transaction.js';
import { signCheckpoint } from './audit-chain.js';
import type { AuditMetrics } from './audit.metrics.js';
import { findLatestCheckpoint, getChainHead, insertCheckpoint } from './audit.repository.js';
import type { CheckpointRow } from './audit.tables.js';

export interface Checkpointer {
  /**
   * Signs the current chain head, unless the latest checkpoint already covers it (then that
   * one is returned). Undefined while the chain is empty.
   */
  checkpoint(): Promise<CheckpointRow | undefined>;
  /** Signs a checkpoint every interval until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

export function createCheckpointer(deps: {
  db: Db;
  keys: KeyRing;
  logger: Logger;
  metrics: AuditMetrics;
  intervalMs: number;
}): Checkpointer {
  const { db, keys, logger, metrics } = deps;

  async function checkpoint(): Promise<CheckpointRow | undefined> {
    const head = await getChainHead(db);
    if (head.seq === 0) return undefined;
    const latest = await findLatestCheckpoint(db);
    if (latest !== undefined && Number(latest.seq) >= head.seq) return latest;
    const signature = await signCheckpoint(keys.signing, head, new Date());
    const row = await insertCheckpoint(db, {
      seq: head.seq,
      hash: head.hash,
      keyId: keys.signing.kid,
      signature,
    });
    metrics.checkpoints.inc();
    logger.info({ seq: head.seq, keyId: keys.signing.kid }, 'audit checkpoint signed');
    return row;
  }

  return {
    checkpoint,
    async run(signal) {
      while (!signal.aborted) {
        await sleep(deps.intervalMs, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) return;
        try {
          await checkpoint();
        } catch (error) {
          logger.warn({ err: error }, 'audit checkpoint failed; retrying next interval');
        }
      }
    },
  };
}
