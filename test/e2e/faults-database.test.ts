import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureBuilt,
  freePort,
  killProcessesUnder,
  startSwitchyard,
  stopSwitchyard,
  waitUntil,
  type ApiClient,
  type ApiResponse,
  type SwitchyardProcess,
} from './support.js';
import {
  createThrowawayDatabase,
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
// it is back everything answers again without a restart. A statement stuck behind a lock
// ends at the statement timeout with a clean error instead of hanging the request.

const OUTAGE_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 1_500;

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
  const detail = () => `\n--- switchyard output ---\n${server?.tail() ?? '(not running)'}`;

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-dbfault-')));
      dataDir = join(root, 'data');
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
          ...sharedKeyEnv(root),
        },
      });
      api = server.api;
      await registerAndSignIn(api, 'owner@example.com');
      await api.expect(201, 'POST', '/v1/projects', { name: 'Faults', slug: 'faults' });
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
      `${samples.length} requests, ${samples.filter((s) => s.status === 503).length} answered 503; 200 again ${recoveryMs} ms after PostgreSQL returned`,
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
