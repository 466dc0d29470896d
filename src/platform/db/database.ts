import { mkdirSync } from 'node:fs';
import { PreparingClient } from './prepared.js';
import { PGlite } from '@electric-sql/pglite';
import { CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { DiscardingClient } from './discarding-client.js';
import type { Schema } from './schema.js';

/** A connection held exclusively, for multi-statement scripts and session-level locks. */
export interface RawConnection {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  /** Runs a script of several statements; returns each statement's result. */
  script(text: string): Promise<Array<{ rows: Record<string, unknown>[] }>>;
}

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/** The one way Switchyard reaches its database, embedded PGlite or PostgreSQL alike. */
export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly db: Kysely<Schema>;
  /**
   * Runs `fn` on one connection no other caller uses meanwhile. On PGlite this holds the only
   * connection, so `fn` must not use `db` (it would wait for itself).
   */
  withConnection<T>(fn: (connection: RawConnection) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

// PostgreSQL returns bigint counts as strings; they fit in a JS number for our purposes.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export async function openDatabase(config: Readonly<Config>, logger: Logger): Promise<Database> {
  if (config.databaseUrl !== undefined) return openPostgres(config, logger);
  mkdirSync(config.dataDir, { recursive: true });
  const pglite = await PGlite.create({ dataDir: `${config.dataDir}/pgdata` });
  return wrapPglite(pglite, logger);
}

// TCP keepalive probes start after this much silence on a connection, so a peer that vanished
// while a connection sat idle is noticed without waiting for a query to time out.
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

function openPostgres(config: Readonly<Config>, logger: Logger): Database {
  const pool = new pg.Pool({
    Client: PreparingClient,
    connectionString: config.databaseUrl,
    max: config.database.poolMax,
    idleTimeoutMillis: config.database.idleTimeoutMs,
    maxLifetimeSeconds: Math.floor(config.database.maxLifetimeMs / 1000),
    connectionTimeoutMillis: config.database.connectTimeoutMs,
    statement_timeout: config.database.statementTimeoutMs,
    query_timeout: config.database.queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    application_name: 'switchyard',
  });
  pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));
  // A connection that dies while checked out (mid-transaction) emits 'error' on its client,
  // which the pool does not listen to then; unheard, it would crash the process. The query in
  // flight fails on its own, so the event only needs hearing.
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.warn({ err: error }, 'database connection failed'));
  });
  const onTimeout = (error: Error) =>
    logger.warn({ err: error }, 'database query timed out; connection discarded');
  const db = new Kysely<Schema>({
    dialect: new PostgresDialect({
      pool: {
        connect: async () => new DiscardingClient(await pool.connect(), onTimeout),
        end: () => pool.end(),
      },
    }),
  });

  return {
    kind: 'postgres',
    db,
    async withConnection(fn) {
      const client = new DiscardingClient(await pool.connect(), onTimeout);
      try {
        return await fn({
          query: async (text, values) => client.query(text, values ?? []),
          script: async (text) => {
            const result = await client.queryScript(text);
            return (Array.isArray(result) ? result : [result]) as Array<{
              rows: Record<string, unknown>[];
            }>;
          },
        });
      } finally {
        client.release();
      }
    },
    async ping() {
      await db.executeQuery(CompiledQuery.raw('select 1'));
    },
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
    }),
    async close() {
      await db.destroy();
    },
  };
}

/** Wraps an open PGlite (a data folder, or an in-memory copy in tests). */
export function wrapPglite(pglite: PGlite, logger: Logger): Database {
  const db = new Kysely<Schema>({ dialect: new PGliteDialect(pglite) });
  let closed = false;
  const raw: RawConnection = {
    query: async (text, values) => pglite.query(text, values),
    script: async (text) => pglite.exec(text),
  };

  return {
    kind: 'pglite',
    db,
    // db.connection() holds the dialect's single connection, serialising us with every query.
    withConnection: (fn) => db.connection().execute(() => fn(raw)),
    async ping() {
      if (closed) throw new Error('database closed');
      await db.executeQuery(CompiledQuery.raw('select 1'));
    },
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      logger.debug('embedded database closed');
    },
  };
}
