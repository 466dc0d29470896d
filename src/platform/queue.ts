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
  /** `singleton`: at most one job of the queue runs at a time, across every replica. */
  policy?: 'standard' | 'singleton';
  parse(data: unknown): T;
}

export interface Queue {
  start(): Promise<void>;
  define<T>(job: JobDefinition<T>): Promise<void>;
  send<T>(
    job: JobDefinition<T>,
    data: T,
    options?: { trx?: Trx; singletonKey?: string; singletonSeconds?: number },
  ): Promise<string | null>;
  /**
   * Sends the job on a cron schedule (UTC), once per slot whatever the number of replicas.
   * Idempotent: replicas starting together keep one schedule. Needs the queue created with
   * `schedule: true` in some running process.
   */
  schedule<T>(job: JobDefinition<T>, cron: string, data: T): Promise<void>;
  work<T>(
    job: JobDefinition<T>,
    handler: (data: T, meta: { jobId: string; retryCount: number }) => Promise<void>,
  ): Promise<void>;
  /** Stops this process's handlers of one job (running ones finish). */
  offWork(job: { name: string }): Promise<void>;
  /** Stops fetching and waits for running handlers, up to the deadline. */
  stop(timeoutMs: number): Promise<void>;
  depth(): Promise<Record<string, number>>;
}

// PostgreSQL's deadlock_detected, and how often define() tries before giving up.
const DEADLOCK = '40P01';
const DEFINE_ATTEMPTS = 5;
// A fixed key for the session lock under which one replica installs pg-boss's schema.
const QUEUE_SCHEMA_LOCK_KEY = 724_311_002;

/**
 * pg-boss creates its schema under a transaction-level advisory lock, yet a replica that
 * waited on that lock can still fail on the schema another one has just created (23505 on
 * pg_namespace). Replicas starting together install it first, one at a time, under a session
 * lock of our own; pg-boss then finds it installed. PGlite has a single process: no race.
 */
async function installSchema(database: Database): Promise<void> {
  if (database.kind !== 'postgres') return;
  await database.withConnection(async (connection) => {
    await connection.query('SELECT pg_advisory_lock($1)', [QUEUE_SCHEMA_LOCK_KEY]);
    try {
      const { rows } = await connection.query("SELECT to_regclass('pgboss.version') AS version");
      if (rows[0]?.['version'] === null)
        await connection.script(PgBoss.getConstructionPlans('pgboss'));
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [QUEUE_SCHEMA_LOCK_KEY]);
    }
  });
}

function adapterFor(database: Database): PgBoss.Db {
  // Statements with values go one by one; pg-boss's migration scripts run whole, and it reads
  // the last statement's rows. On PGlite, withConnection shares the dialect's single lock.
  return {
    executeSql: async (text, values) =>
      database.withConnection(async (connection) => {
        if (values !== undefined && values.length > 0) return connection.query(text, values);
        try {
          const results = await connection.script(text);
          return results.at(-1) ?? { rows: [] };
        } catch (error) {
          // A failed `BEGIN; …; COMMIT;` script (pg-boss losing a creation race to another
          // replica) leaves the connection in an aborted transaction: end it before reuse.
          await connection.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
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

export function createQueue(
  database: Database,
  logger: Logger,
  options: { pollingIntervalSeconds?: number; schedule?: boolean } = {},
): Queue {
  const boss = new PgBoss({
    db: adapterFor(database),
    schema: 'pgboss',
    supervise: true,
    // The timekeeper sends scheduled jobs; pg-boss lets one instance a minute do so.
    schedule: options.schedule ?? false,
    migrate: true,
    maintenanceIntervalSeconds: 30,
    monitorStateIntervalSeconds: 30,
  });
  boss.on('error', (error: Error) => logger.warn({ err: error }, 'job queue error'));
  const pollingIntervalSeconds = options.pollingIntervalSeconds ?? 0.5;
  const defined = new Set<string>();
  let isStarted = false;
  let starting: Promise<void> | undefined;

  const queue: Queue = {
    /** Idempotent. API-only processes start the queue too, so that they can enqueue. */
    start() {
      isStarted = true;
      starting ??= installSchema(database)
        .then(() => boss.start())
        .then(() => undefined);
      return starting;
    },

    async define(job) {
      if (defined.has(job.name)) return;
      const options = {
        name: job.name,
        retryLimit: job.retryLimit,
        retryDelay: job.retryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: job.expireInSeconds,
        policy: job.policy ?? 'standard',
      };
      // Replicas starting together create queues at once; pg-boss's create_queue inserts a row
      // then alters tables referencing it, so two of them can deadlock. It is idempotent: retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await boss.createQueue(job.name, options);
          break;
        } catch (error) {
          if ((error as { code?: unknown }).code !== DEADLOCK || attempt >= DEFINE_ATTEMPTS)
            throw error;
          logger.info({ queue: job.name, attempt }, 'queue creation deadlocked; retrying');
          await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200 * attempt));
        }
      }
      defined.add(job.name);
    },

    async send(job, data, sendOptions = {}) {
      if (!defined.has(job.name)) {
        // On PGlite the transaction holds the only connection, and defining would wait for it.
        if (sendOptions.trx !== undefined) {
          throw new Error(
            `job queue ${job.name} must be defined before sending inside a transaction`,
          );
        }
        await queue.define(job);
      }
      return boss.send(job.name, data as object, {
        retryLimit: job.retryLimit,
        retryDelay: job.retryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: job.expireInSeconds,
        ...(sendOptions.singletonKey === undefined
          ? {}
          : { singletonKey: sendOptions.singletonKey }),
        ...(sendOptions.singletonSeconds === undefined
          ? {}
          : { singletonSeconds: sendOptions.singletonSeconds }),
        ...(sendOptions.trx === undefined ? {} : { db: trxAdapter(sendOptions.trx) }),
      });
    },

    async schedule(job, cron, data) {
      await queue.define(job);
      await boss.schedule(job.name, cron, data as object, {
        tz: 'UTC',
        retryLimit: job.retryLimit,
        retryDelay: job.retryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: job.expireInSeconds,
      });
    },

    async work(job, handler) {
      await boss.work(
        job.name,
        { pollingIntervalSeconds, batchSize: 1, includeMetadata: true },
        async (jobs) => {
          for (const item of jobs) {
            const log = logger.child({
              jobId: item.id,
              job: job.name,
              attempt: item.retryCount + 1,
            });
            const data = job.parse(item.data);
            log.debug('job started');
            await handler(data, { jobId: item.id, retryCount: item.retryCount });
          }
        },
      );
    },

    async offWork(job) {
      await boss.offWork(job.name);
    },

    async stop(timeoutMs) {
      if (!isStarted) return;
      await boss.stop({ graceful: true, close: false, wait: true, timeout: timeoutMs });
    },

    async depth() {
      const out: Record<string, number> = {};
      for (const name of defined) out[name] = await boss.getQueueSize(name);
      return out;
    },
  };
  return queue;
}
