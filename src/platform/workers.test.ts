import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitUntil } from '../../test/support/wait.js';
import { loadConfig } from './config.js';
import { createDependencies, type Dependencies } from './dependencies.js';
import { RECONCILER_LEASE, startWorkers, type Workers } from './workers.js';

const STALE_MS = 1_500;
const WAIT = { timeoutMs: 10_000, intervalMs: 50 };
const APP_HOST = 'web.production.demo.localhost';

interface Replica {
  name: string;
  deps: Dependencies;
  workers: Workers;
  routerPort: number;
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

function isRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** A GET through a router port with the given Host; the status and body, or undefined. */
function routerGet(
  port: number,
  host: string,
): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const request = http.get({
      host: '127.0.0.1',
      port,
      path: '/',
      headers: { host },
      agent: false,
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', () => resolve(undefined));
  });
}

function writeKeys(dir: string): Record<string, string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signingKey = join(dir, 'jwt-signing-key.pem');
  writeFileSync(signingKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const masterKey = join(dir, 'master.key');
  writeFileSync(masterKey, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return { SWITCHYARD_JWT_PRIVATE_KEY_PATH: signingKey, SWITCHYARD_MASTER_KEY_PATH: masterKey };
}

describe('leader-only work follows the reconciler lease', { timeout: 90_000 }, () => {
  let t: TestDatabase;
  let root = '';
  let keys: Record<string, string> = {};
  let upstream: http.Server | undefined;
  let upstreamPort = 0;
  const replicas: Replica[] = [];

  /** One process's dependencies and workers (role all), as `serve` starts them. */
  async function startReplica(name: string, port?: number): Promise<Replica> {
    const routerPort = port ?? (await freePort());
    const config = loadConfig({
      ...keys,
      SWITCHYARD_DATA_DIR: mkdtempSync(join(root, `${name}-`)),
      DATABASE_URL: t.url ?? '',
      DATABASE_POOL_MAX: '4',
      SWITCHYARD_ROLE: 'all',
      SWITCHYARD_ROUTER_PORT: String(routerPort),
      SWITCHYARD_WORKER_STALE_MS: String(STALE_MS),
      SWITCHYARD_HEARTBEAT_INTERVAL_MS: '500',
      LOG_LEVEL: 'silent',
    });
    const deps = await createDependencies(config, pino({ level: 'silent' }));
    const replica = { name, deps, workers: await startWorkers(deps), routerPort };
    replicas.push(replica);
    return replica;
  }

  /** Hands the lease to `holder` for an hour, as a process that took it over would hold it. */
  async function giveLeaseTo(holder: Replica): Promise<void> {
    await sql`
      UPDATE leases SET holder = ${holder.deps.worker.id}, expires_at = now() + interval '1 hour'
      WHERE name = ${RECONCILER_LEASE}`.execute(t.database.db);
  }

  before(async () => {
    t = await createTestDatabase('postgres');
    root = mkdtempSync(join(tmpdir(), 'switchyard-leader-'));
    keys = writeKeys(root);
    upstream = http.createServer((_request, response) => response.end('hello from the app'));
    upstream.listen(0, '127.0.0.1');
    await new Promise((resolve) => upstream?.once('listening', resolve));
    const address = upstream.address();
    upstreamPort = typeof address === 'object' && address !== null ? address.port : 0;
  });

  after(async () => {
    for (const replica of replicas.reverse()) {
      await replica.workers.stop(5_000);
      await replica.deps.close();
    }
    await new Promise((resolve) => upstream?.close(resolve));
    await t.drop();
    rmSync(root, { recursive: true, force: true });
  });

  it('closes the router port of a deposed leader and opens the new leader’s', async () => {
    const first = await startReplica('first');
    assert.equal(await isRefused(first.routerPort), false, 'the first process leads and routes');
    const second = await startReplica('second');
    assert.equal(await isRefused(second.routerPort), true, 'a follower has no router port');

    await giveLeaseTo(second);
    await waitUntil(
      'the deposed leader to close its router port',
      () => isRefused(first.routerPort),
      WAIT,
    );
    await waitUntil(
      'the new leader to open its router port',
      async () => !(await isRefused(second.routerPort)),
      WAIT,
    );
    second.deps.router?.setRoute(APP_HOST, [{ host: '127.0.0.1', port: upstreamPort }]);
    const served = await routerGet(second.routerPort, APP_HOST);
    assert.deepEqual(served, { status: 200, body: 'hello from the app' });
    assert.deepEqual(first.deps.router?.routes(), [], 'the deposed router keeps no routes');

    // Winning the lease back starts the leader's work again; the other stops it.
    await giveLeaseTo(first);
    await waitUntil(
      'the returning leader to open its port',
      async () => !(await isRefused(first.routerPort)),
      WAIT,
    );
    await waitUntil(
      'the deposed leader to close its port',
      () => isRefused(second.routerPort),
      WAIT,
    );
    const unrouted = await routerGet(first.routerPort, APP_HOST);
    assert.equal(unrouted?.status, 404, 'the returning leader routes only what it restored');
    assert.deepEqual(second.deps.router?.routes(), []);
  });

  it('hands the lease back when its router port is taken, and says why in readiness', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const address = blocker.address();
    const takenPort = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const third = await startReplica('third', takenPort);
      await giveLeaseTo(third);
      await waitUntil(
        'readiness to name the failed start',
        async () => {
          const checks = await third.deps.readiness();
          return /EADDRINUSE/.test(checks['leadership']?.detail ?? '');
        },
        WAIT,
      );
      const checks = await third.deps.readiness();
      assert.equal(checks['leadership']?.ok, false);
      await waitUntil(
        'another process to lead and route',
        async () => {
          const { rows } = await sql<{ holder: string }>`
            SELECT holder FROM leases WHERE name = ${RECONCILER_LEASE} AND expires_at > now()`.execute(
            t.database.db,
          );
          const holder = replicas.find((r) => r.deps.worker.id === rows[0]?.holder);
          return holder !== undefined && holder !== third && !(await isRefused(holder.routerPort));
        },
        WAIT,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
