import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/platform/config.js';
import { createDependencies } from '../../src/platform/dependencies.js';
import { buildApp } from '../../src/platform/app.js';
import { startWorkers } from '../../src/platform/workers.js';
import { fakeResolver } from '../support/app.js';
import { createTestDatabase, testBackends, type TestDatabase } from '../support/database.js';

// Everything `serve` starts, started and stopped in this process the way `serve` does it:
// afterwards nothing may keep the event loop alive that was not there before (no timer,
// socket, server or child process), so a process that closed its app could simply end.

const usePostgres = testBackends().includes('postgres');

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Kinds of resource that are more numerous now than in `baseline`, with the surplus. */
function surplusOver(baseline: Record<string, number>): Record<string, number> {
  const surplus: Record<string, number> = {};
  for (const [kind, count] of Object.entries(countResources())) {
    const extra = count - (baseline[kind] ?? 0);
    if (extra > 0) surplus[kind] = extra;
  }
  return surplus;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === 'object' && address !== null ? address.port : 0),
      );
    });
  });
}

/** One GET on a connection of its own (no client keep-alive socket survives it). */
function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe(
  'resources after a full start and stop',
  { skip: !usePostgres && 'needs PostgreSQL', timeout: 60_000 },
  () => {
    let testDb: TestDatabase | undefined;
    let dir = '';

    before(async () => {
      testDb = await createTestDatabase('postgres');
      dir = mkdtempSync(join(tmpdir(), 'switchyard-handles-'));
    });

    after(async () => {
      await testDb?.drop();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it('leaves no timer, socket or handle behind once workers, app and dependencies are closed', async () => {
      assert.ok(testDb?.url !== undefined);
      const signingKey = join(dir, 'signing.pem');
      writeFileSync(
        signingKey,
        generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
      );
      const masterKey = join(dir, 'master.key');
      writeFileSync(masterKey, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
      const config = loadConfig({
        DATABASE_URL: testDb.url,
        DATABASE_POOL_MAX: '4',
        REDIS_URL: process.env['SWITCHYARD_TEST_REDIS_URL'] || 'redis://127.0.0.1:6379/15',
        REDIS_KEY_PREFIX: `handles-${randomBytes(4).toString('hex')}:`,
        SWITCHYARD_JWT_PRIVATE_KEY_PATH: signingKey,
        SWITCHYARD_MASTER_KEY_PATH: masterKey,
        SWITCHYARD_DATA_DIR: join(dir, 'data'),
        SWITCHYARD_ROUTER_PORT: String(await freePort()),
        SWITCHYARD_HEARTBEAT_INTERVAL_MS: '200',
        SWITCHYARD_WORKER_STALE_MS: '1000',
        SWITCHYARD_REVOCATION_POLL_MS: '100',
        LOG_LEVEL: 'silent',
      });
      const baseline = countResources();

      const deps = await createDependencies(config, pino({ level: 'silent' }), {
        resolver: fakeResolver,
      });
      const app = await buildApp(deps);
      const workers = await startWorkers(deps);
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;

      // Use what allocates resources: the pool, Redis (rate limits), the router, the loops.
      assert.equal(await get(port, '/readyz'), 200);
      assert.equal(await get(port, '/metrics'), 200);
      const credentials = { email: 'handles@example.com', password: 'a long enough password' };
      const registered = await app.inject({
        method: 'POST',
        url: '/v1/auth/register',
        payload: { ...credentials, name: 'H' },
      });
      assert.equal(registered.statusCode, 202);
      const login = await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: credentials,
      });
      assert.equal(login.statusCode, 200);
      assert.equal(await get(config.router.port, '/'), 404, 'the leader router did not answer');
      assert.ok(
        Object.keys(surplusOver(baseline)).length > 0,
        'nothing was opened: the check proves nothing',
      );

      const stoppedAt = performance.now();
      await workers.stop(5_000);
      await app.close();
      await deps.close();
      const closeMs = Math.round(performance.now() - stoppedAt);

      // Sockets finish closing on the next turns of the loop; allow them a moment.
      const deadline = Date.now() + 3_000;
      let surplus = surplusOver(baseline);
      while (Object.keys(surplus).length > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        surplus = surplusOver(baseline);
      }
      assert.deepEqual(surplus, {}, `left open after close: ${JSON.stringify(surplus)}`);
      assert.ok(closeMs < 10_000, `closing took ${closeMs} ms`);
    });
  },
);
