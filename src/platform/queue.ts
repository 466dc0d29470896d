import PgBoss from 'pg-boss';
import { CompiledQuery } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from './db/database.js';
import type { Trx } from './db/transaction.js';

/**
 * The job queue: pg-boss on the same database as everything else (PGlite or PostgreSQL), so
 * a job can be enqueued in the transaction that creates the row it works on.
 */
export interface JobDefinition<T> {
  name: string;
  /** Attempts after the first, with exponential backoff and jitter. */
  retryLimit: number;
  retryDelaySeconds: number;
  /** A job running longer than this is considered lost (its worker died) and retried. */
  expireInSeconds: number;
  parse(data: unknown): T;
}

export interface Queue {
  start(): Promise<void>;
  define<T>(job: JobDefinition<T>): Promise<void>;
  send<T>(job: JobDefinition<T>, data: T, options?: { trx?: Trx; singletonKey?: string }): Promise<string | null>;
  work<T>(job: JobDefinition<T>, handler: (data: T, meta: { jobId: string; retryCount: number }) => Promise<void>): Promise<void>;
  /** Stops this process's handlers of one job (running ones finish). */
  offWork(job: { name: string }): Promise<void>;
  /** Stops fetching and waits for running handlers, up to the deadline. */
  stop(timeoutMs: number): Promise<void>;
  depth(): Promise<Record<string, number>>;
}

function adapterFor(database: Database): PgBoss.Db {
  // Statements with values go one by one; pg-boss's migration scripts run whole, and it reads
  // the last statement's rows. On PGlite, withConnection shares the dialect's single lock.
  return {
    executeSql: async (text, values) =>
      database.withConnection(async (connection) => {
        if (values !== undefined && values.length > 0) return connection.query(text, values);
        const results = await connection.script(text);
        return results.at(-1) ?? { rows: [] };
      }),
  };
}

function trxAdapter(trx: Trx): PgBoss.Db {
  return {
    executeSql: async (text, values) => {
      const result = await trx.executeQuery(CompiledQuery.raw(text, values ?? []));
      return { rows: result.rows as unknown[] };
    },
  };
}

export function createQueue(database: Database, logger: Logger, options: { pollingIntervalSeconds?: number } = {}): Queue {
  const boss = new PgBoss({
    db: adapterFor(database),
    schema: 'pgboss',
    supervise: true,
    schedule: false,
    migrate: true,
    maintenanceIntervalSeconds: 30,
    monitorStateIntervalSeconds: 30,
  });
  boss.on('error', (error: Error) => logger.warn({ err: error }, 'job queue error'));
  const pollingIntervalSeconds = options.pollingIntervalSeconds ?? 0.5;
  const defined = new Set<string>();

  return {
    async start() {
      await boss.start();
    },

    async define(job) {
      if (defined.has(job.name)) return;
      await boss.createQueue(job.name, {
        name: job.name,
        retryLimit: job.retryLimit,
        retryDelay: job.retryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: job.expireInSeconds,
      });
      defined.add(job.name);
    },

    async send(job, data, sendOptions = {}) {
      return boss.send(job.name, data as object, {
        retryLimit: job.retryLimit,
        retryDelay: job.retryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: job.expireInSeconds,
        ...(sendOptions.singletonKey === undefined ? {} : { singletonKey: sendOptions.singletonKey }),
        ...(sendOptions.trx === undefined ? {} : { db: trxAdapter(sendOptions.trx) }),
      });
    },

    async work(job, handler) {
      await boss.work(job.name, { pollingIntervalSeconds, batchSize: 1, includeMetadata: true }, async (jobs) => {
        for (const item of jobs) {
          const log = logger.child({ jobId: item.id, job: job.name, attempt: item.retryCount + 1 });
          const data = job.parse(item.data);
          log.debug('job started');
          await handler(data, { jobId: item.id, retryCount: item.retryCount });
        }
      });
    },

    async offWork(job) {
      await boss.offWork(job.name);
    },

    async stop(timeoutMs) {
      await boss.stop({ graceful: true, close: false, wait: true, timeout: timeoutMs });
    },

    async depth() {
      const out: Record<string, number> = {};
      for (const name of defined) out[name] = await boss.getQueueSize(name);
      return out;
    },
  };
}
