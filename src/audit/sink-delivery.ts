import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Db } from '../platform/db/transaction.js';
import { redactUrl } from '../platform/url-guard.js';
import { recordFromRow } from './audit-event.js';
import type { AuditMetrics } from './audit.metrics.js';
import type { SinkRow } from './audit.tables.js';
import { payloadFor, type ChainedEvent } from './sink-formats.js';
import { postOnce, type AttemptResult, type OutboundSettings } from './sink-http.js';
import {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  signatureFor,
  TIMESTAMP_HEADER,
} from './sink-signature.js';
import {
  listActiveSinkIds,
  listPending,
  markDelivered,
  markFailed,
  releaseLease,
  takeLease,
  type PendingDelivery,
} from './sink.repository.js';
import type { SinkCredentials } from './sink.service.js';

export interface DeliverySettings extends OutboundSettings {
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Exponential backoff with equal jitter: half the step fixed, half random. */
export function backoffMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

export interface SinkDeliverer {
  /** One pass: every active sink delivers what is due, in order, until it must wait. */
  deliverDue(): Promise<number>;
  /** Passes every poll interval until `signal` aborts. */
  run(signal: AbortSignal, pollIntervalMs: number): Promise<void>;
}

function toChained(row: PendingDelivery): ChainedEvent {
  return { ...recordFromRow(row), seq: Number(row.seq), prevHash: row.prev_hash, hash: row.hash };
}

/**
 * The delivery worker. Each sink is worked by one process at a time (a lease on its row) and
 * one batch at a time, oldest first, so a sink receives events in chain order. A transient
 * failure (refused, reset, timeout, 5xx, 429) holds the whole sink back until the batch's
 * next attempt — Retry-After when the sink gave one, exponential backoff with jitter else —
 * and dead-letters the batch when its attempts run out; any other 4xx dead-letters it at
 * once. Either way the events after it carry on.
 */
export function createSinkDeliverer(deps: {
  db: Db;
  logger: Logger;
  metrics: AuditMetrics;
  settings: DeliverySettings;
  credentialsOf(sink: SinkRow): SinkCredentials;
}): SinkDeliverer {
  const { db, logger, metrics, settings } = deps;
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const leaseMs = settings.timeoutMs * 3 + 30_000;

  async function attempt(sink: SinkRow, batch: PendingDelivery[]): Promise<AttemptResult> {
    const deliveryId = randomUUID();
    const events = batch.map(toChained);
    const body = Buffer.from(
      JSON.stringify(
        payloadFor(sink.format, {
          deliveryId,
          sink: { id: sink.id, name: sink.name, targetId: sink.target_id },
          events,
        }),
      ),
      'utf8',
    );
    const credentials = deps.credentialsOf(sink);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'switchyard-audit/1',
      [TIMESTAMP_HEADER]: String(timestamp),
      [SIGNATURE_HEADER]: signatureFor(credentials.signingSecret, timestamp, body),
      [DELIVERY_HEADER]: deliveryId,
      'idempotency-key': deliveryId,
      ...(credentials.bearerToken === undefined
        ? {}
        : { authorization: `Bearer ${credentials.bearerToken}` }),
    };
    const end = metrics.deliveryDuration.startTimer({ sink: sink.name });
    const result = await postOnce(sink.url, headers, body, settings);
    end();
    return result;
  }

  async function settle(
    sink: SinkRow,
    batch: PendingDelivery[],
    result: AttemptResult,
  ): Promise<boolean> {
    const seqs = batch.map((row) => Number(row.seq));
    if (result.kind === 'delivered') {
      await markDelivered(db, sink.id, seqs);
      metrics.deliveries.inc({ sink: sink.name, outcome: 'delivered' }, batch.length);
      return true;
    }
    const attempts = Math.max(...batch.map((row) => row.attempts)) + 1;
    const waitMs =
      result.kind === 'transient'
        ? (result.retryAfterMs ??
          backoffMs(attempts, settings.backoffBaseMs, settings.backoffMaxMs))
        : 0;
    const dead = await markFailed(db, sink.id, seqs, {
      error: result.reason,
      nextAttemptAt: new Date(Date.now() + waitMs),
      maxAttempts: sink.max_attempts,
      isFinal: result.kind === 'permanent',
    });
    metrics.deliveries.inc({ sink: sink.name, outcome: 'retry' }, batch.length - dead);
    metrics.deliveries.inc({ sink: sink.name, outcome: 'dead' }, dead);
    const fields = {
      sinkId: sink.id,
      sink: sink.name,
      url: redactUrl(sink.url),
      events: batch.length,
      attempts,
      reason: result.reason,
    };
    if (dead > 0) logger.error({ ...fields, dead }, 'audit sink delivery dead-lettered');
    else logger.warn({ ...fields, retryInMs: waitMs }, 'audit sink delivery failed; will retry');
    // After a dead letter the next events may go at once; after a retry the sink waits.
    return dead === batch.length;
  }

  async function deliverSink(sinkId: string): Promise<number> {
    const sink = await takeLease(db, sinkId, owner, leaseMs);
    if (sink === undefined) return 0;
    let delivered = 0;
    try {
      for (;;) {
        const batch = await listPending(db, sink.id, sink.batch_size);
        const head = batch[0];
        if (head === undefined || head.next_attempt_at.getTime() > Date.now()) return delivered;
        const result = await attempt(sink, batch);
        if (!(await settle(sink, batch, result))) return delivered;
        if (result.kind === 'delivered') delivered += batch.length;
        await takeLease(db, sink.id, owner, leaseMs);
      }
    } finally {
      await releaseLease(db, sink.id, owner);
    }
  }

  async function deliverDue(): Promise<number> {
    const ids = await listActiveSinkIds(db);
    const counts = await Promise.all(ids.map((id) => deliverSink(id)));
    return counts.reduce((sum, count) => sum + count, 0);
  }

  return {
    deliverDue,
    async run(signal, pollIntervalMs) {
      while (!signal.aborted) {
        try {
          await deliverDue();
        } catch (error) {
          logger.warn({ err: error }, 'audit sink delivery pass failed');
        }
        await sleep(pollIntervalMs, undefined, { signal }).catch(() => undefined);
      }
    },
  };
}
