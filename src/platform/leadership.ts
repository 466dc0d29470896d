import type { Logger } from 'pino';
import type { Db } from './db/transaction.js';
import * as repo from './leases.repository.js';

export interface Loop {
  /** Stops the loop and waits for a tick in flight. */
  stop(): Promise<void>;
}

/**
 * Runs `tick` now and then every `intervalMs` until stopped. A tick that throws is logged and
 * the loop goes on; ticks never overlap.
 */
export function every(
  intervalMs: number,
  logger: Logger,
  what: string,
  tick: (signal: AbortSignal) => Promise<void>,
): Loop {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const run = () => {
    running = tick(controller.signal)
      .catch((error: unknown) =>
        logger.warn({ err: error, loop: what }, 'background loop tick failed'),
      )
      .finally(() => {
        if (!controller.signal.aborted) timer = setTimeout(run, intervalMs);
      });
  };
  run();
  return {
    async stop() {
      controller.abort();
      clearTimeout(timer);
      await running;
    },
  };
}

export interface Worker {
  id: string;
  hostname: string;
  pid: number;
  role: 'all' | 'api' | 'worker';
}

/** Records that this worker is alive; stop() removes its row so its claims lapse at once. */
export function startHeartbeat(db: Db, worker: Worker, intervalMs: number, logger: Logger): Loop {
  const loop = every(intervalMs, logger, 'heartbeat', () => repo.beat(db, worker));
  return {
    async stop() {
      await loop.stop();
      await repo.removeWorker(db, worker.id).catch(() => undefined);
    },
  };
}

export interface Election extends Loop {
  isLeader(): boolean;
  /** Settles after the first attempt and, if it won, after the leader's start-up. */
  settled: Promise<void>;
}

/**
 * Competes for the named lease. The holder renews it every ttl/3; when renewals fail for a
 * whole ttl, another process takes it over. `onElected` runs each time this process wins;
 * its signal aborts when the lease is lost or the election stops, and `onDeposed` then runs
 * once `onElected` has returned (the caller stops leader work there). Winning again later
 * runs `onElected` again.
 */
export function startElection(options: {
  db: Db;
  name: string;
  holder: string;
  ttlMs: number;
  logger: Logger;
  onElected: (signal: AbortSignal) => Promise<void>;
  onDeposed: () => Promise<void>;
  /**
   * When `onElected` fails, this process hands the lease back (so another process can lead)
   * and competes again after `retryAfterFailureMs`; `onStartFailed` hears why, and
   * `onStartFailed(undefined)` once a later term started well.
   */
  onStartFailed?: (error: unknown) => void;
  retryAfterFailureMs?: number;
}): Election {
  const { db, name, holder, ttlMs, logger } = options;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? ttlMs * 2;
  // Until then this process does not compete: its last start as leader failed.
  let pausedUntil = 0;
  let isLeader = false;
  let lastRenewal = 0;
  // One per term of leadership: aborted when that term ends.
  let term: AbortController | undefined;
  // Leader work runs beside the loop, so slow start-up never delays lease renewals.
  let duties: Promise<void> = Promise.resolve();
  let settle: () => void = () => undefined;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const loop = every(Math.max(100, Math.floor(ttlMs / 3)), logger, 'election', async (signal) => {
    let holds = false;
    try {
      const isPaused = Date.now() < pausedUntil;
      if (isPaused && isLeader) await repo.releaseLease(db, name, holder);
      holds = !isPaused && (await repo.acquireLease(db, name, holder, ttlMs));
      if (holds) lastRenewal = Date.now();
    } catch (error) {
      // Unreachable database: keep leading until the lease could have expired elsewhere.
      holds = isLeader && Date.now() - lastRenewal < ttlMs;
      logger.warn({ err: error, lease: name }, 'lease renewal failed');
    }
    if (holds && !isLeader) {
      isLeader = true;
      term = new AbortController();
      logger.info({ lease: name, holder }, 'leadership acquired');
      duties = options.onElected(AbortSignal.any([signal, term.signal])).then(
        () => options.onStartFailed?.(undefined),
        (error: unknown) => {
          logger.error(
            { err: error, lease: name, retryInMs: retryAfterFailureMs },
            'leader start-up failed; handing the lease back',
          );
          pausedUntil = Date.now() + retryAfterFailureMs;
          options.onStartFailed?.(error);
        },
      );
    } else if (!holds && isLeader) {
      isLeader = false;
      logger.warn({ lease: name, holder }, 'leadership lost');
      // A leader's start-up still running (restoring apps) gives up rather than finish.
      term?.abort();
      await duties;
      await options.onDeposed();
    }
    void duties.then(settle);
  });
  return {
    isLeader: () => isLeader,
    settled,
    async stop() {
      settle();
      await loop.stop();
      await duties;
      if (isLeader) {
        isLeader = false;
        await options.onDeposed();
        await repo.releaseLease(db, name, holder).catch(() => undefined);
      }
    },
  };
}
