import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { buildApp, type AppInstance } from '../platform/app.js';
import { loadConfig } from '../platform/config.js';
import { openDatabase } from '../platform/db/database.js';
import { createDependencies, type Dependencies } from '../platform/dependencies.js';
import { fakeResolver, signUp } from '../../test/support/app.js';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { waitUntil } from '../../test/support/wait.js';
import { verifyChain } from './audit-verify.js';
import { TcpProxy } from '../../test/support/tcp-proxy.js';
import { metricValue } from './test-support/events.js';

const silent = pino({ level: 'silent' });

/**
 * The database goes away under load and comes back. Every request the API answered, whatever
 * it answered, must have left exactly one event, and the chain must still verify. PGlite runs
 * inside the process and cannot become unreachable, so this runs on PostgreSQL only: the
 * outage is a TCP proxy in front of it being cut, not the shared server being stopped.
 */
describe(
  'the audit trail through a database outage under load',
  { skip: !testBackends().includes('postgres') && 'needs PostgreSQL' },
  () => {
    let testDb: TestDatabase;
    let proxy: TcpProxy;
    let dir: string;
    let deps: Dependencies;
    let app: AppInstance;

    before(async () => {
      testDb = await createTestDatabase('postgres');
      const target = new URL(testDb.url ?? '');
      proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      await proxy.start();
      dir = mkdtempSync(join(tmpdir(), 'switchyard-outage-'));
      const keyPath = join(dir, 'jwt.pem');
      writeFileSync(
        keyPath,
        generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
        { mode: 0o600 },
      );
      const masterPath = join(dir, 'master.key');
      writeFileSync(masterPath, randomBytes(32).toString('base64'), { mode: 0o600 });
      const viaProxy = new URL(testDb.url ?? '');
      viaProxy.port = String(proxy.port);
      const config = loadConfig({
        DATABASE_URL: viaProxy.toString(),
        DATABASE_POOL_MAX: '8',
        DATABASE_CONNECT_TIMEOUT_MS: '500',
        // A query caught on a connection the cut left half-open fails in seconds, not never.
        DATABASE_STATEMENT_TIMEOUT_MS: '2000',
        DATABASE_QUERY_TIMEOUT_MS: '3000',
        SWITCHYARD_JWT_PRIVATE_KEY_PATH: keyPath,
        SWITCHYARD_MASTER_KEY_PATH: masterPath,
        SWITCHYARD_DATA_DIR: dir,
        SWITCHYARD_ROLE: 'api',
        LOG_LEVEL: 'silent',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '1000000',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '1000000',
        AUDIT_INSERT_TIMEOUT_MS: '1000',
        AUDIT_FLUSH_INTERVAL_MS: '20',
      });
      const database = await openDatabase(config, silent);
      deps = await createDependencies(config, silent, { database, resolver: fakeResolver });
      app = await buildApp(deps);
      await app.ready();
    });

    after(async () => {
      await app.close();
      await deps.close();
      await deps.database.close();
      await proxy.close();
      await testDb.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('leaves exactly one event per answered request, none lost and none twice, and an unbroken chain', async () => {
      const user = await signUp(app);
      const slug = `outage-${Date.now().toString(36)}`;
      const created = await app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: user.headers,
        payload: { name: 'Outage', slug },
      });
      assert.equal(created.statusCode, 201, created.body);

      const answered = new Map<string, number>();
      let isRunning = true;
      const client = async () => {
        while (isRunning) {
          const requestId = `outage-${randomUUID()}`;
          const response = await app.inject({
            method: 'PATCH',
            url: `/v1/projects/${slug}`,
            headers: { ...user.headers, 'x-request-id': requestId },
            payload: { name: `Name ${requestId.slice(-6)}` },
          });
          answered.set(requestId, response.statusCode);
        }
      };
      const load = Promise.all(Array.from({ length: 6 }, client));
      const answeredSoFar = (count: number) =>
        waitUntil(`${count} more answers`, async () => answered.size >= count, {
          timeoutMs: 20_000,
        });

      await answeredSoFar(40);
      await proxy.cut();
      const atCut = answered.size;
      await answeredSoFar(atCut + 60);
      await waitUntil('events spooled', async () => deps.audit.writer.spoolDepth() > 0, {
        timeoutMs: 20_000,
      });
      await proxy.restore();
      const atRestore = answered.size;
      await answeredSoFar(atRestore + 40);
      isRunning = false;
      await load;

      const statuses = [...answered.values()];
      assert.ok(
        statuses.some((status) => status === 200),
        'some changes went through',
      );
      assert.ok(
        statuses.some((status) => status >= 500),
        'some requests failed during the outage',
      );
      await waitUntil(
        'the spool replayed',
        async () => {
          await deps.audit.writer.flush();
          return deps.audit.writer.spoolDepth() === 0 && deps.audit.writer.queueDepth() === 0;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );

      // Counted straight from PostgreSQL, not through the proxy.
      const direct = new pg.Client({ connectionString: testDb.url });
      await direct.connect();
      try {
        const { rows } = await direct.query<{ request_id: string; count: number }>(
          `select request_id, count(*)::int as count from audit_events where request_id like 'outage-%' group by request_id`,
        );
        const stored = new Map(rows.map((row) => [row.request_id, Number(row.count)]));
        const missing = [...answered.keys()].filter((id) => !stored.has(id));
        const doubled = [...stored.entries()].filter(([, count]) => count > 1);
        const unanswered = [...stored.keys()].filter((id) => !answered.has(id));
        assert.deepEqual(
          { missing: missing.length, doubled: doubled.length, unanswered: unanswered.length },
          { missing: 0, doubled: 0, unanswered: 0 },
        );
        assert.equal(stored.size, answered.size);
      } finally {
        await direct.end();
      }
      assert.ok(
        (await metricValue(deps.metrics.registry, 'switchyard_audit_events_spooled_total')) > 0,
      );
      assert.ok(
        (await metricValue(deps.metrics.registry, 'switchyard_audit_events_replayed_total')) > 0,
      );
      const report = await verifyChain(testDb.database.db, deps.keys);
      assert.equal(report.ok, true, JSON.stringify(report.firstBreak));
    });
  },
);
