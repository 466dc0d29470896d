import type { Logger } from 'pino';
import type { AuditRecord } from './audit-event.js';
import type { AuditMetrics } from './audit.metrics.js';
import type { AuditSpool } from './audit-spool.js';

export interface AuditWriterOptions {
  /** Most events per multi-row insert; a queue this long flushes at once. */
  batchSize: number;
  /** A smaller queue waits at most this long. */
  flushIntervalMs: number;
  /** Events held in memory; past it they go straight to the spool. */
  maxQueue: number;
  /** An insert slower than this counts as failed and its batch is spooled. */
  insertTimeoutMs: number;
  /** Replay attempts after a failure wait this long, doubling up to retryMaxMs. */
  retryMinMs: number;
  retryMaxMs: number;
}

export const DEFAULT_WRITER_OPTIONS: AuditWriterOptions = {
  batchSize: 250,
  flushIntervalMs: 50,
  maxQueue: 10_000,
  insertTimeoutMs: 5_000,
  retryMinMs: 250,
  retryMaxMs: 10_000,
};

/** Stores a batch in one statement; resolves to how many were new. */
export type InsertEvents = (records: readonly AuditRecord[]) => Promise<number>;

export interface AuditWriter {
  /** Queues an event. Never throws and never waits, except to spool when the queue is full. */
  enqueue(record: AuditRecord): void;
  /** Writes everything queued (to the database, or to the spool) and tries to replay the spool. */
  flush(): Promise<void>;
  queueDepth(): number;
  spoolDepth(): number;
  /** Stops the timers, flushes what is queued, and closes the spool. */
  close(): Promise<void>;
}

class InsertTimeout extends Error {
  constructor(ms: number) {
    super(`audit insert took longer than ${ms} ms`);
    this.name = 'InsertTimeout';
  }
}

/**
 * The batched writer for events with no transaction to ride on. Events are queued in memory
 * and written by one pump at a time with multi-row inserts, flushed by size or by time.
 *
 * Order is kept across failures: the spool always holds the oldest unwritten events, so
 * while it is not empty everything queued is appended behind them, and the pump replays the
 * spool before it writes anything new. A failed or slow insert spools its batch (a slow one
 * may still land later; the replay then skips those ids). When the queue is full, the batch
 * in flight, the queue and the new event are spooled together, in that order.
 */
export function createAuditWriter(deps: {
  insert: InsertEvents;
  spool: AuditSpool;
  logger: Logger;
  metrics: AuditMetrics;
  options?: Partial<AuditWriterOptions>;
}): AuditWriter {
  const { insert, spool, logger, metrics } = deps;
  const options = { ...DEFAULT_WRITER_OPTIONS, ...deps.options };
  let queue: AuditRecord[] = [];
  let inFlight: { records: AuditRecord[]; isSpooled: boolean } | undefined;
  let pumping: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let retryDelayMs = 0;
  let nextReplayAt = 0;
  let isClosed = false;

  async function insertWithin(
    records: readonly AuditRecord[],
    path: 'direct' | 'replay',
  ): Promise<number> {
    const end = metrics.flushDuration.startTimer({ path });
    let deadline: NodeJS.Timeout | undefined;
    const attempt = insert(records);
    // A timed-out insert may still settle later; its failure must not go unhandled.
    attempt.catch(() => undefined);
    try {
      const stored = await Promise.race([
        attempt,
        new Promise<never>((_resolve, reject) => {
          deadline = setTimeout(
            () => reject(new InsertTimeout(options.insertTimeoutMs)),
            options.insertTimeoutMs,
          );
        }),
      ]);
      end({ outcome: 'ok' });
      metrics.batchSize.observe(records.length);
      return stored;
    } catch (error) {
      end({ outcome: 'error' });
      metrics.failed.inc({ path });
      throw error;
    } finally {
      clearTimeout(deadline);
    }
  }

  function toSpool(records: AuditRecord[]): void {
    spool.append(records);
    metrics.spooled.inc(records.length);
  }

  function failed(error: unknown, path: 'direct' | 'replay', count: number): void {
    retryDelayMs =
      retryDelayMs === 0 ? options.retryMinMs : Math.min(options.retryMaxMs, retryDelayMs * 2);
    nextReplayAt = Date.now() + retryDelayMs;
    logger.warn(
      { err: error, path, events: count, spooled: spool.depth, retryInMs: retryDelayMs },
      'audit write failed; spooling',
    );
  }

  /** Replays one chunk of the spool; false when it should wait (failure or retry delay). */
  async function replayChunk(): Promise<boolean> {
    if (Date.now() < nextReplayAt) return false;
    const { records, end, unreadable } = spool.peek(options.batchSize);
    if (unreadable > 0) {
      metrics.unreadable.inc(unreadable);
      logger.error(
        { lines: unreadable, spool: spool.path },
        'unreadable audit spool lines passed over',
      );
    }
    try {
      const stored = records.length === 0 ? 0 : await insertWithin(records, 'replay');
      spool.advance(end, records.length + unreadable);
      metrics.replayed.inc(stored);
      metrics.written.inc({ path: 'replay' }, stored);
      retryDelayMs = 0;
      if (spool.depth === 0) logger.info('audit spool replayed');
      return true;
    } catch (error) {
      failed(error, 'replay', records.length);
      return false;
    }
  }

  async function writeBatch(): Promise<boolean> {
    const records = queue.splice(0, options.batchSize);
    inFlight = { records, isSpooled: false };
    try {
      const stored = await insertWithin(records, 'direct');
      metrics.written.inc({ path: 'direct' }, stored);
      retryDelayMs = 0;
      return true;
    } catch (error) {
      if (!inFlight.isSpooled) toSpool(records);
      failed(error, 'direct', records.length);
      return false;
    } finally {
      inFlight = undefined;
    }
  }

  async function pump(): Promise<void> {
    for (;;) {
      if (spool.depth > 0) {
        // Newer events queue up behind the spooled ones.
        if (queue.length > 0) toSpool(queue.splice(0));
        if (!(await replayChunk())) return;
        continue;
      }
      if (queue.length === 0) return;
      if (!(await writeBatch())) return;
    }
  }

  function schedule(delayMs: number): void {
    if (isClosed || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void kick();
    }, delayMs);
    timer.unref();
  }

  async function kick(): Promise<void> {
    if (pumping !== undefined) return pumping;
    pumping = pump()
      .catch((error: unknown) => logger.error({ err: error }, 'audit writer failed'))
      .finally(() => {
        pumping = undefined;
        if (spool.depth > 0) schedule(Math.max(options.flushIntervalMs, nextReplayAt - Date.now()));
        else if (queue.length > 0)
          schedule(queue.length >= options.batchSize ? 0 : options.flushIntervalMs);
      });
    return pumping;
  }

  /** Queue full: the batch in flight, the queue and `record` go to the spool, in order. */
  function overflow(record: AuditRecord): void {
    const pending = [
      ...(inFlight !== undefined && !inFlight.isSpooled ? inFlight.records : []),
      ...queue,
      record,
    ];
    if (inFlight !== undefined) inFlight.isSpooled = true;
    try {
      toSpool(pending);
      queue = [];
    } catch (error) {
      // The disk refused too: hold the event in memory rather than drop it.
      queue.push(record);
      logger.error(
        { err: error, queued: queue.length },
        'audit spool write failed; holding events in memory',
      );
    }
  }

  // A spool left by an earlier run (or a crash) is replayed before anything new.
  if (spool.depth > 0) schedule(0);

  return {
    enqueue(record) {
      if (queue.length >= options.maxQueue) overflow(record);
      else queue.push(record);
      if (queue.length >= options.batchSize && pumping === undefined) {
        clearTimeout(timer);
        timer = undefined;
        void kick();
      } else schedule(options.flushIntervalMs);
    },

    async flush() {
      clearTimeout(timer);
      timer = undefined;
      nextReplayAt = 0;
      await pumping;
      await kick();
    },

    queueDepth: () => queue.length + (inFlight?.isSpooled === false ? inFlight.records.length : 0),
    spoolDepth: () => spool.depth,

    async close() {
      isClosed = true;
      clearTimeout(timer);
      timer = undefined;
      await pumping;
      // One more pass; whatever the database does not take now waits in the spool.
      nextReplayAt = 0;
      await kick();
      if (queue.length > 0) toSpool(queue.splice(0));
      spool.close();
    },
  };
}
