import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { adminDatabaseUrl, testBackends } from '../../../test/support/database.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { waitUntil } from '../../../test/support/wait.js';
import { openDatabase, type Database } from './database.js';
import { inTransaction, RollbackFailedError } from './transaction.js';

const silent = pino({ level: 'silent' });
const STATEMENT_TIMEOUT_MS = 200;
const QUERY_TIMEOUT_MS = 800;

function configFor(url: string, env: Record<string, string> = {}) {
  return loadConfig({
    DATABASE_URL: url,
    SWITCHYARD_JWT_PRIVATE_KEY_PATH: '/dev/null',
    ...env,
  });
}

describe('database query timeouts from configuration', () => {
  const url = 'postgres://postgres@127.0.0.1:5432/postgres';

  it('waits 5 s longer than the statement timeout by default', () => {
    assert.equal(configFor(url).database.queryTimeoutMs, 20_000);
    const config = configFor(url, { DATABASE_STATEMENT_TIMEOUT_MS: '30000' });
    assert.equal(config.database.queryTimeoutMs, 35_000);
  });

  it('refuses a query timeout that is not longer than the statement timeout', () => {
    assert.throws(
      () =>
        configFor(url, {
          DATABASE_STATEMENT_TIMEOUT_MS: '5000',
          DATABASE_QUERY_TIMEOUT_MS: '5000',
        }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.some((problem) => problem.startsWith('DATABASE_QUERY_TIMEOUT_MS')),
    );
  });
});

/**
 * PostgreSQL behind a TCP proxy that can freeze its connections: open, but nothing crosses
 * them any more (a network path that died without a reset). A query in flight there must fail
 * after DATABASE_QUERY_TIMEOUT_MS, and its connection must leave the pool rather than stall
 * the next caller. PGlite runs in the process and has no connection to lose.
 */
describe(
  'a PostgreSQL connection that stops answering',
  { skip: !testBackends().includes('postgres') && 'needs PostgreSQL' },
  () => {
    let proxy: TcpProxy;
    let database: Database;
    let direct: pg.Client;

    before(async () => {
      const target = new URL(adminDatabaseUrl());
      proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      await proxy.start();
      const viaProxy = new URL(adminDatabaseUrl());
      viaProxy.port = String(proxy.port);
      const config = configFor(viaProxy.toString(), {
        // One connection: a frozen one handed back to the pool would be the next one used.
        DATABASE_POOL_MAX: '1',
        DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        DATABASE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
        DATABASE_CONNECT_TIMEOUT_MS: '2000',
      });
      database = await openDatabase(config, silent);
      direct = new pg.Client({ connectionString: adminDatabaseUrl() });
      await direct.connect();
    });

    after(async () => {
      await database.close();
      await proxy.close();
      await direct.end();
    });

    const backendPid = async (): Promise<number> => {
      const { rows } = await database.db.executeQuery<{ pid: number }>(
        CompiledQuery.raw('select pg_backend_pid() as pid'),
      );
      return rows[0]?.pid ?? -1;
    };

    /** Freezes the pool's one connection; returns its server process id. */
    const freezeConnection = async (): Promise<number> => {
      const pid = await backendPid();
      assert.equal(proxy.freeze(), 1);
      return pid;
    };

    const isGone = (pid: number) => async () => {
      const { rows } = await direct.query('select 1 from pg_stat_activity where pid = $1', [pid]);
      return rows.length === 0;
    };

    it('fails a query in flight after the query timeout and serves the next on a new connection', async () => {
      const frozenPid = await freezeConnection();

      const started = Date.now();
      await assert.rejects(database.ping(), /Query read timeout/);
      const waitedMs = Date.now() - started;
      assert.ok(waitedMs >= QUERY_TIMEOUT_MS - 50, `failed after ${waitedMs} ms`);
      assert.ok(waitedMs < QUERY_TIMEOUT_MS + 2_000, `failed after ${waitedMs} ms`);

      const nextStarted = Date.now();
      const nextPid = await backendPid();
      assert.notEqual(nextPid, frozenPid);
      assert.ok(Date.now() - nextStarted < QUERY_TIMEOUT_MS, 'the next query did not wait');
      // Closing our end closed the server's: the frozen session does not linger.
      await waitUntil('the frozen session ended', isGone(frozenPid), { timeoutMs: 5_000 });
    });

    it('fails a transaction in about one query timeout and discards its connection', async () => {
      const frozenPid = await freezeConnection();

      const started = Date.now();
      await assert.rejects(
        inTransaction(database.db, async (trx) => {
          await trx.executeQuery(CompiledQuery.raw('select 1'));
        }),
        (error: unknown) =>
          error instanceof RollbackFailedError || /Query read timeout/.test(String(error)),
      );
      const waitedMs = Date.now() - started;
      assert.ok(waitedMs < QUERY_TIMEOUT_MS + 2_000, `failed after ${waitedMs} ms`);

      const result = await inTransaction(database.db, async (trx) => {
        const { rows } = await trx.executeQuery<{ pid: number }>(
          CompiledQuery.raw('select pg_backend_pid() as pid'),
        );
        return rows[0]?.pid;
      });
      assert.notEqual(result, frozenPid);
      await waitUntil('the frozen session ended', isGone(frozenPid), { timeoutMs: 5_000 });
    });

    it('discards a held connection (withConnection) whose query timed out', async () => {
      const frozenPid = await freezeConnection();

      await assert.rejects(
        database.withConnection((connection) => connection.query('select 1')),
        /Query read timeout/,
      );
      const pid = await database.withConnection(async (connection) => {
        const { rows } = await connection.query('select pg_backend_pid() as pid');
        return rows[0]?.['pid'];
      });
      assert.notEqual(pid, frozenPid);
      await waitUntil('the frozen session ended', isGone(frozenPid), { timeoutMs: 5_000 });
    });

    it('gives back the connection of a transaction whose commit got no answer', async () => {
      await backendPid();

      await assert.rejects(
        inTransaction(database.db, async (trx) => {
          await trx.executeQuery(CompiledQuery.raw('select 1'));
          // The COMMIT that follows goes into a connection that no longer answers.
          assert.equal(proxy.freeze(), 1);
        }),
        /Query read timeout/,
      );
      // With one connection in the pool, a leaked one would leave nothing to run this on.
      assert.ok((await backendPid()) > 0);
      await waitUntil('one connection in the pool', async () => database.poolStats().total === 1, {
        timeoutMs: 5_000,
      });
    });

    it('lets the server cancel a slow statement first and keeps that connection', async () => {
      const pid = await backendPid();

      await assert.rejects(
        database.db.executeQuery(CompiledQuery.raw('select pg_sleep(2)')),
        (error: unknown) => (error as { code?: unknown }).code === '57014',
      );
      assert.equal(await backendPid(), pid);
      assert.equal(database.poolStats().total, 1);
    });
  },
);
