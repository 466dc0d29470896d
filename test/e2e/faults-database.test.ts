import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO_ROOT,
  createGitRepo,
  ensureBuilt,
  freePort,
  killProcessesUnder,
  routerGet,
  startSwitchyard,
  stopSwitchyard,
  waitUntil,
  type ApiClient,
  type ApiResponse,
  type SwitchyardProcess,
} from './support.js';
import {
  buildToEnd,
  createThrowawayDatabase,
  deploymentToEnd,
  logsWith,
  registerAndSignIn,
  sharedKeyEnv,
  startTcpProxy,
  throughProxy,
  type TcpProxy,
  type ThrowawayDatabase,
} from './cluster-support.js';

// Compiled once at import, before any test's clock starts (the product runs from dist/).
ensureBuilt();

// Switchyard reaches PostgreSQL through a TCP proxy that the test cuts: while it is cut the
// API answers 503 DEPENDENCY_UNAVAILABLE in the standard envelope and /readyz is false; once
// it is back everything answers again without a restart, and the deployed app too (the outage
// outlasts the leader lease). A statement stuck behind a lock ends at the statement timeout
// with a clean error instead of hanging the request.

const OUTAGE_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 1_500;
// Shorter than the outage: the leader loses its lease meanwhile and must win it back.
const STALE_MS = 2_500;
const HELLO = 'Hello from hello-node v1\n';

type ErrorBody = { error?: { code?: string; message?: string; requestId?: string } };

interface Sample {
  at: number;
  status: number;
  code: string | undefined;
  failure?: string;
}

describe('PostgreSQL outage and slow statements', { timeout: 120_000 }, () => {
  let root = '';
  let dataDir = '';
  let database: ThrowawayDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let server: SwitchyardProcess | undefined;
  let api: ApiClient;
  const host = 'web.production.faults.localhost';
  const detail = () => `\n--- switchyard output ---\n${server?.tail() ?? '(not running)'}`;

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-dbfault-')));
      dataDir = join(root, 'data');
      createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), join(root, 'hello-node'));
      database = await createThrowawayDatabase();
      proxy = await startTcpProxy(Number(new URL(database.url).port || 5432));
      server = await startSwitchyard({
        dataDir,
        apiPort: await freePort(),
        routerPort: await freePort(),
        env: {
          DATABASE_URL: throughProxy(database.url, proxy),
          DATABASE_CONNECT_TIMEOUT_MS: '1000',
          DATABASE_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
          SWITCHYARD_WORKER_STALE_MS: String(STALE_MS),
          SWITCHYARD_HEARTBEAT_INTERVAL_MS: '500',
          DEPLOY_HEALTH_TIMEOUT_MS: '15000',
          DEPLOY_DRAIN_MS: '500',
          ...sharedKeyEnv(root),
        },
      });
      api = server.api;
      await registerAndSignIn(api, 'owner@example.com');
      await api.expect(201, 'POST', '/v1/projects', { name: 'Faults', slug: 'faults' });
      const service = await api.expect<{ id: string }>(
        201,
        'POST',
        '/v1/projects/faults/services',
        {
          name: 'web',
          gitUrl: join(root, 'hello-node'),
        },
      );
      const build = await api.expect<{ id: string }>(
        202,
        'POST',
        `/v1/services/${service.id}/builds`,
        {},
      );
      assert.equal((await buildToEnd(api, build.id, 60_000, detail)).status, 'succeeded');
      const deployment = await api.expect<{ id: string }>(
        202,
        'POST',
        `/v1/services/${service.id}/deployments`,
        { environment: 'production' },
      );
      assert.equal((await deploymentToEnd(api, deployment.id, 30_000, detail)).status, 'live');
    },
    { timeout: 90_000 },
  );

  after(async () => {
    if (server !== undefined) await stopSwitchyard(server, 10_000);
    if (dataDir !== '') killProcessesUnder(dataDir);
    await proxy?.close();
    await database?.drop();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('answers 503 DEPENDENCY_UNAVAILABLE and is not ready while PostgreSQL is away, then recovers by itself', async (t) => {
    assert.ok(proxy !== undefined && server !== undefined);
    const load = startLoad(api, 4);
    await waitUntil('requests to flow', () => load.samples.length >= 20, { timeoutMs: 10_000 });

    const cutAt = performance.now();
    await proxy.cut();
    await waitUntil(
      'a 503 during the outage',
      () => load.samples.some((s) => s.at > cutAt && s.status === 503),
      {
        timeoutMs: 5_000,
        detail,
      },
    );
    const down = await api.request<ErrorBody>('GET', '/v1/projects');
    const ready = await api.request<{ status: string; checks: Record<string, { ok: boolean }> }>(
      'GET',
      '/readyz',
    );
    await waitUntil('the outage to last', () => performance.now() - cutAt >= OUTAGE_MS, {
      timeoutMs: OUTAGE_MS + 1_000,
    });

    await proxy.restore();
    const restoredAt = performance.now();
    await waitUntil(
      'the API to answer 200 again',
      async () => (await api.request('GET', '/v1/projects')).status === 200,
      {
        timeoutMs: 15_000,
        detail,
      },
    );
    const recoveryMs = Math.round(performance.now() - restoredAt);
    await waitUntil(
      '/readyz to answer 200 again',
      async () => (await api.request('GET', '/readyz')).status === 200,
      {
        timeoutMs: 10_000,
        detail,
      },
    );
    // The lease lapsed during the outage: the leader stopped its app, and brings it back.
    await waitUntil(
      'the app to answer through the router again',
      async () => (await routerGet(server!.routerPort, host, '/')).body.toString('utf8') === HELLO,
      { timeoutMs: 20_000, detail },
    );
    const appBackMs = Math.round(performance.now() - restoredAt);
    assert.ok(logsWith(server, 'leadership lost').length > 0, `the lease did not lapse${detail()}`);
    const afterRecovery = load.samples.length;
    await waitUntil(
      'more requests after recovery',
      () => load.samples.length >= afterRecovery + 20,
      {
        timeoutMs: 10_000,
      },
    );
    const samples = await load.stop();

    assert.equal(server.child.exitCode, null, `switchyard exited${detail()}`);
    assert.equal(down.status, 503, down.text);
    assert.equal(down.body.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.equal(typeof down.body.error?.requestId, 'string');
    assert.equal(typeof down.body.error?.message, 'string');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.checks['database']?.ok, false);

    const unexpected = samples.filter(
      (s) => !(s.status === 200 || (s.status === 503 && s.code === 'DEPENDENCY_UNAVAILABLE')),
    );
    assert.deepEqual(
      unexpected.slice(0, 5),
      [],
      `${unexpected.length} answers were neither 200 nor 503`,
    );
    const lastSamples = samples.slice(afterRecovery);
    assert.ok(
      lastSamples.every((s) => s.status === 200),
      'not every request after recovery succeeded',
    );
    t.diagnostic(
      `${samples.length} requests, ${samples.filter((s) => s.status === 503).length} answered 503; 200 again ${recoveryMs} ms and the app ${appBackMs} ms after PostgreSQL returned`,
    );
  });

  it('ends a statement blocked behind a lock at the statement timeout with a clean 503', async () => {
    assert.ok(database !== undefined);
    const locker = await database.client();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE projects IN ACCESS EXCLUSIVE MODE');
    let response: ApiResponse<ErrorBody>;
    const startedAt = performance.now();
    try {
      response = await api.request<ErrorBody>('GET', '/v1/projects');
    } finally {
      await locker.query('ROLLBACK');
    }
    const tookMs = performance.now() - startedAt;

    assert.equal(response.status, 503, response.text);
    assert.equal(response.body.error?.code, 'DEPENDENCY_UNAVAILABLE');
    assert.ok(tookMs >= STATEMENT_TIMEOUT_MS - 100, `answered after ${Math.round(tookMs)} ms`);
    assert.ok(tookMs < STATEMENT_TIMEOUT_MS + 5_000, `answered after ${Math.round(tookMs)} ms`);
    assert.equal((await api.request('GET', '/v1/projects')).status, 200);
  });
});

/** `loops` clients listing projects without pause; each answer's status and error code. */
function startLoad(api: ApiClient, loops: number) {
  const samples: Sample[] = [];
  let isStopping = false;
  const run = async () => {
    while (!isStopping) {
      const at = performance.now();
      try {
        const response = await api.request<ErrorBody>('GET', '/v1/projects');
        samples.push({ at, status: response.status, code: response.body?.error?.code });
      } catch (error) {
        samples.push({ at, status: 0, code: undefined, failure: String(error) });
      }
    }
  };
  const running = Array.from({ length: loops }, () => run());
  return {
    samples,
    async stop() {
      isStopping = true;
      await Promise.all(running);
      return samples;
    },
  };
}
