import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  ApiClient,
  ensureBuilt,
  freePort,
  startSwitchyard,
  stopSwitchyard,
  waitUntil,
  type SwitchyardProcess,
} from './support.js';
import {
  PASSWORD,
  createThrowawayDatabase,
  logsWith,
  registerAndSignIn,
  sharedKeyEnv,
  startRedisServer,
  type RedisServer,
  type ThrowawayDatabase,
} from './cluster-support.js';

// Compiled once at import, before any test's clock starts (the product runs from dist/).
ensureBuilt();

// Switchyard's own Redis (a child of the test) is SIGKILLed while clients sign in and call the
// API: no request fails because of it, a warning is logged, the fallback counter rises and
// readiness says degraded; when Redis is back, the counters live in Redis again.

const PREFIX = 'faults:';
const OUTAGE_MS = 3_000;

interface Sample {
  at: number;
  status: number;
  failure?: string;
}

type Ready = { checks: Record<string, { ok: boolean; detail?: string }> };

describe('Redis lost and back under load', { timeout: 120_000 }, () => {
  let root = '';
  let database: ThrowawayDatabase | undefined;
  let redis: RedisServer | undefined;
  let server: SwitchyardProcess | undefined;
  let api: ApiClient;
  let env: Record<string, string> = {};
  const detail = () => `\n--- switchyard output ---\n${server?.tail() ?? '(not running)'}`;
  const cacheDetail = async () =>
    (await api.expect<Ready>(200, 'GET', '/readyz')).checks['cache']?.detail ?? '';
  const rateLimitKeys = async () => {
    assert.ok(redis !== undefined);
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      return await client.keys(`${PREFIX}ratelimit:*`);
    } finally {
      client.disconnect();
    }
  };

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-redisfault-')));
      database = await createThrowawayDatabase();
      redis = await startRedisServer();
      env = {
        DATABASE_URL: database.url,
        REDIS_KEY_PREFIX: PREFIX,
        SWITCHYARD_ROLE: 'api',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '100000',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '100000',
        ...sharedKeyEnv(root),
      };
      server = await startSwitchyard({
        dataDir: join(root, 'data'),
        apiPort: await freePort(),
        routerPort: await freePort(),
        env: { ...env, REDIS_URL: redis.url },
      });
      api = server.api;
      await registerAndSignIn(api, 'owner@example.com');
    },
    { timeout: 90_000 },
  );

  after(async () => {
    if (server !== undefined) await stopSwitchyard(server, 10_000);
    await redis?.kill();
    await database?.drop();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('keeps answering without a 5xx, warns, counts fallbacks and reports degraded readiness, then returns to Redis', async (t) => {
    assert.ok(redis !== undefined && server !== undefined);
    assert.equal(await cacheDetail(), 'redis');
    assert.ok((await rateLimitKeys()).length > 0, 'sign-in counters are not in Redis');

    const load = startLoad(api, server.api.baseUrl);
    await waitUntil('requests to flow', () => load.samples.length >= 10, { timeoutMs: 10_000 });
    const killedAt = performance.now();
    await redis.kill();
    await waitUntil(
      'readiness to report the cache degraded',
      async () => (await cacheDetail()).startsWith('degraded'),
      {
        timeoutMs: 10_000,
        detail,
      },
    );
    await waitUntil('the outage to last', () => performance.now() - killedAt >= OUTAGE_MS, {
      timeoutMs: OUTAGE_MS + 1_000,
    });
    const metrics = await fetch(`${api.baseUrl}/metrics`).then((response) => response.text());
    const duringOutage = load.samples.filter((s) => s.at > killedAt).length;

    await redis.start();
    await waitUntil(
      'readiness to report Redis again',
      async () => (await cacheDetail()) === 'redis',
      {
        timeoutMs: 15_000,
        detail,
      },
    );
    await api.expect(200, 'POST', '/v1/auth/login', {
      email: 'owner@example.com',
      password: PASSWORD,
    });
    const samples = await load.stop();

    const failed = samples.filter((s) => s.status >= 500 || s.status === 0);
    assert.deepEqual(
      failed.slice(0, 5),
      [],
      `${failed.length} of ${samples.length} requests failed`,
    );
    assert.ok(duringOutage >= 5, `only ${duringOutage} requests while Redis was away`);
    assert.ok(fallbackCount(metrics) > 0, 'the fallback counter did not rise');
    assert.ok(
      logsWith(server, 'redis unavailable; falling back').length > 0,
      `no warning${detail()}`,
    );
    assert.ok(logsWith(server, 'redis available again').length > 0, `no recovery log${detail()}`);
    assert.ok((await rateLimitKeys()).length > 0, 'sign-in counters did not return to Redis');
    t.diagnostic(
      `${samples.length} requests, ${duringOutage} during the outage, none failed; fallbacks counted: ${fallbackCount(metrics)}`,
    );
  });

  it('starts and serves with Redis unreachable from the start, warning and counting the fallback', async () => {
    assert.ok(server !== undefined);
    assert.equal(await stopSwitchyard(server, 10_000), 0);
    // Nothing listens on this port: Redis is down before Switchyard starts.
    server = await startSwitchyard({
      dataDir: join(root, 'data'),
      apiPort: await freePort(),
      routerPort: await freePort(),
      env: { ...env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` },
    });
    api = new ApiClient(server.api.baseUrl);
    await api.expect(200, 'POST', '/v1/auth/login', {
      email: 'owner@example.com',
      password: PASSWORD,
    });
    assert.match(await cacheDetail(), /^degraded/);
    const metrics = await fetch(`${api.baseUrl}/metrics`).then((response) => response.text());
    assert.ok(fallbackCount(metrics) > 0, 'the fallback counter did not rise');
    assert.ok(
      logsWith(server, 'redis unavailable; falling back').length > 0,
      `no warning${detail()}`,
    );
  });
});

/** The sum of switchyard_auth_redis_fallbacks_total over its labels. */
function fallbackCount(metrics: string): number {
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('switchyard_auth_redis_fallbacks_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Two clients signing in and two reading the caller, without pause, until stopped. */
function startLoad(api: ApiClient, baseUrl: string) {
  const samples: Sample[] = [];
  let isStopping = false;
  const signIn = new ApiClient(baseUrl);
  const record = async (send: () => Promise<{ status: number }>) => {
    const at = performance.now();
    try {
      samples.push({ at, status: (await send()).status });
    } catch (error) {
      samples.push({ at, status: 0, failure: String(error) });
    }
  };
  const loop = async (send: () => Promise<{ status: number }>) => {
    while (!isStopping) await record(send);
  };
  const login = () =>
    signIn.request('POST', '/v1/auth/login', { email: 'owner@example.com', password: PASSWORD });
  const me = () => api.request('GET', '/v1/me');
  const running = [loop(login), loop(login), loop(me), loop(me)];
  return {
    samples,
    async stop() {
      isStopping = true;
      await Promise.all(running);
      return samples;
    },
  };
}
