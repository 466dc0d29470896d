import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO_ROOT,
  createGitRepo,
  ensureBuilt,
  freePort,
  isPortClosed,
  killProcessesUnder,
  processesWithCwdUnder,
  readEventStream,
  startSwitchyard,
  stopSwitchyard,
  waitUntil,
  type ApiClient,
  type SwitchyardProcess,
} from './support.js';
import {
  PASSWORD,
  buildToEnd,
  createSlowBuildRepo,
  createThrowawayDatabase,
  deploymentToEnd,
  logsWith,
  registerAndSignIn,
  sharedKeyEnv,
  type ThrowawayDatabase,
} from './cluster-support.js';

// Compiled once at import, before any test's clock starts (the product runs from dist/).
ensureBuilt();

// SIGTERM while a client keeps calling the API, a build runs and an app instance is live:
// every request that was in flight completes, the build finishes, nothing is left running,
// exit 0. And a shutdown that cannot finish in time exits 1 naming what was still open.

interface Sample {
  id: string;
  startedAt: number;
  endedAt: number;
  status?: number;
  failure?: string;
}

describe('graceful shutdown of a serve process', { timeout: 120_000 }, () => {
  let root = '';
  let dataDir = '';
  let database: ThrowawayDatabase | undefined;
  let server: SwitchyardProcess | undefined;
  let env: Record<string, string> = {};
  let api: ApiClient;
  let slowServiceId = '';
  let liveDeploymentId = '';
  const detail = () => `\n--- switchyard output ---\n${server?.tail() ?? '(not running)'}`;

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-shutdown-')));
      dataDir = join(root, 'data');
      createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), join(root, 'hello-node'));
      createSlowBuildRepo(join(root, 'slow'), 4);
      database = await createThrowawayDatabase();
      env = {
        DATABASE_URL: database.url,
        ...sharedKeyEnv(root),
        DEPLOY_HEALTH_TIMEOUT_MS: '15000',
        DEPLOY_DRAIN_MS: '500',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '1000',
      };
      server = await startSwitchyard({
        dataDir,
        apiPort: await freePort(),
        routerPort: await freePort(),
        env,
      });
      api = server.api;
      await registerAndSignIn(api, 'owner@example.com');
      await api.expect(201, 'POST', '/v1/projects', { name: 'Stop', slug: 'stop' });
      const web = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/stop/services', {
        name: 'web',
        gitUrl: join(root, 'hello-node'),
      });
      const slow = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/stop/services', {
        name: 'slow',
        gitUrl: join(root, 'slow'),
      });
      slowServiceId = slow.id;
      const build = await api.expect<{ id: string }>(
        202,
        'POST',
        `/v1/services/${web.id}/builds`,
        {},
      );
      assert.equal((await buildToEnd(api, build.id, 60_000, detail)).status, 'succeeded');
      const deployment = await api.expect<{ id: string }>(
        202,
        'POST',
        `/v1/services/${web.id}/deployments`,
        {
          environment: 'production',
        },
      );
      assert.equal((await deploymentToEnd(api, deployment.id, 30_000, detail)).status, 'live');
      liveDeploymentId = deployment.id;
    },
    { timeout: 100_000 },
  );

  after(async () => {
    if (server !== undefined) await stopSwitchyard(server, 5_000);
    if (dataDir !== '') killProcessesUnder(dataDir);
    await database?.drop();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('drains in-flight requests, ends log streams, finishes the running build and exits 0 leaving nothing running', async (t) => {
    assert.ok(server !== undefined && database !== undefined);
    assert.ok(processesWithCwdUnder(dataDir).length > 0, 'the app instance is not running');
    const build = await api.expect<{ id: string }>(
      202,
      'POST',
      `/v1/services/${slowServiceId}/builds`,
      {},
    );
    await waitUntil(
      'the slow build to run',
      async () => {
        const state = await api.expect<{ status: string }>(200, 'GET', `/v1/builds/${build.id}`);
        return state.status === 'running';
      },
      { timeoutMs: 30_000, detail },
    );

    // A client following the app's logs: a stream that never ends by itself.
    const follower = readEventStream(
      `${api.baseUrl}/v1/deployments/${liveDeploymentId}/logs?follow=true`,
      api.token ?? '',
      'no such event',
      60_000,
    ).then(
      () => 'ended',
      (error: unknown) => `failed: ${String(error)}`,
    );
    const load = startApiLoad(api, 6);
    await waitUntil('requests to flow', () => load.samples.length >= 30, { timeoutMs: 10_000 });
    const signIn = { email: 'owner@example.com', password: PASSWORD };
    // Sign-ins hash a password: slow enough to be likely in flight when the signal lands.
    const signIns = [1, 2, 3].map((n) =>
      send(api, `sign-in-${n}`, 'POST', '/v1/auth/login', signIn),
    );
    // And one surely in flight: the server has begun it, and its body follows the signal.
    const held = await startHeldRequest(api, 'held-sign-in', '/v1/auth/login', signIn);
    const running = server;
    const sigtermAt = performance.now();
    running.child.kill('SIGTERM');
    await waitUntil('the shutdown to begin', () => logsWith(running, 'shutting down').length > 0, {
      timeoutMs: 10_000,
      detail,
    });
    const heldSample = held.finish();
    const code = await server.exited;
    const stopMs = Math.round(performance.now() - sigtermAt);
    const samples = [...(await load.stop()), ...(await Promise.all(signIns)), await heldSample];
    assert.equal((await heldSample).status, 200, 'the request begun before the signal');
    assert.equal(code, 0, `exit ${code}${detail()}`);
    assert.equal(await follower, 'ended', 'the log stream did not end with the shutdown');

    // The server's own log says which requests it received, and when; the client says what
    // came back. Every request the server took in must have succeeded, those it received
    // before the signal included; the others it shed (503, connection closed) or never saw.
    const [stopping] = logsWith(server, 'shutting down');
    assert.ok(stopping !== undefined);
    const shutdownAt = Date.parse(String(stopping['time']));
    const handled = new Map(
      logsWith(server, 'request completed').map((line) => [String(line['reqId']), line]),
    );
    const takenIn = samples.filter((sample) => handled.has(sample.id));
    const failedTakenIn = takenIn.filter((sample) => sample.status !== 200);
    assert.deepEqual(
      failedTakenIn.slice(0, 5),
      [],
      `${failedTakenIn.length} handled requests failed`,
    );
    const inFlight = takenIn.filter((sample) => {
      const line = handled.get(sample.id);
      const receivedAt = Date.parse(String(line?.['time'])) - Number(line?.['durationMs']);
      return receivedAt <= shutdownAt && Date.parse(String(line?.['time'])) >= shutdownAt;
    });
    assert.ok(inFlight.length > 0, 'no request was in flight when the shutdown began');
    const shed = samples.filter((sample) => !handled.has(sample.id) && sample.status === 200);
    assert.deepEqual(shed, [], 'a request answered 200 without a log line');
    assert.deepEqual(processesWithCwdUnder(dataDir), [], 'processes outlived switchyard');
    assert.equal(await isPortClosed(server.routerPort), true);
    const [row] = await database.query<{ status: string }>(
      'SELECT status FROM builds WHERE id = $1',
      [build.id],
    );
    assert.equal(row?.status, 'succeeded', 'the running build did not finish during the drain');
    assert.equal(logsWith(server, 'shutdown complete').length, 1);
    t.diagnostic(
      `${samples.length} requests, ${inFlight.length} in flight as the shutdown began, none failed; exit 0 after ${stopMs} ms`,
    );
  });

  it('exits 1 at the shutdown deadline, naming the phase and what was still open', async () => {
    server = await startSwitchyard({
      dataDir,
      apiPort: await freePort(),
      routerPort: await freePort(),
      env: { ...env, SWITCHYARD_ROLE: 'api', SWITCHYARD_SHUTDOWN_TIMEOUT_MS: '2000' },
    });
    // A client that sends half a request body and then goes quiet keeps the drain waiting.
    const socket = connect({ host: '127.0.0.1', port: server.apiPort });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"em',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));

    const sigtermAt = performance.now();
    server.child.kill('SIGTERM');
    const code = await server.exited;
    const stopMs = Math.round(performance.now() - sigtermAt);
    socket.destroy();

    assert.equal(code, 1, `exit ${code}${detail()}`);
    assert.ok(stopMs >= 1_900 && stopMs < 10_000, `exited after ${stopMs} ms`);
    const [line] = logsWith(server, 'shutdown deadline passed; exiting');
    assert.ok(line !== undefined, `no deadline log line${detail()}`);
    assert.equal(line['phase'], 'closing http server');
    const open = line['open'] as Record<string, number>;
    assert.ok((open['TCPSocketWrap'] ?? 0) >= 1, `open: ${JSON.stringify(open)}`);
  });
});

/** One request with its own X-Request-Id, timed; a network failure is a sample too. */
async function send(
  api: ApiClient,
  id: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Sample> {
  const startedAt = performance.now();
  try {
    const response = await fetch(`${api.baseUrl}${path}`, {
      method,
      headers: {
        'x-request-id': id,
        ...(api.token === undefined ? {} : { authorization: `Bearer ${api.token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    await response.arrayBuffer();
    return { id, startedAt, endedAt: performance.now(), status: response.status };
  } catch (error) {
    return { id, startedAt, endedAt: performance.now(), failure: String(error) };
  }
}

/** `loops` clients reading the caller and its projects without pause, until stopped. */
function startApiLoad(api: ApiClient, loops: number) {
  const samples: Sample[] = [];
  let isStopping = false;
  const paths = ['/v1/me', '/v1/projects', '/v1/projects/stop/services'];
  const run = async (loop: number) => {
    for (let i = 0; !isStopping; i++) {
      const sample = await send(
        api,
        `load-${loop}-${i}`,
        'GET',
        paths[i % paths.length] ?? '/v1/me',
      );
      samples.push(sample);
      // Once the server is gone every attempt is refused at once; no need to spin.
      if (sample.failure !== undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const running = Array.from({ length: loops }, (_, loop) => run(loop));
  return {
    samples,
    async stop() {
      isStopping = true;
      await Promise.all(running);
      return samples;
    },
  };
}

/**
 * A POST the server has surely begun handling: it asks `Expect: 100-continue` and resolves
 * once the server's interim 100 answer shows it parsed the headers and started the request.
 * Its body is sent by `finish`, so the request stays in flight until then.
 */
async function startHeldRequest(
  api: ApiClient,
  id: string,
  path: string,
  body: unknown,
): Promise<{ finish(): Promise<Sample> }> {
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  const startedAt = performance.now();
  const request = httpRequest(`${api.baseUrl}${path}`, {
    method: 'POST',
    headers: {
      'x-request-id': id,
      'content-type': 'application/json',
      'content-length': String(payload.length),
      expect: '100-continue',
    },
  });
  const answered = new Promise<Sample>((resolve) => {
    request.on('response', (response) => {
      response.resume();
      response.on('end', () =>
        resolve({ id, startedAt, endedAt: performance.now(), status: response.statusCode }),
      );
    });
    request.on('error', (error) =>
      resolve({ id, startedAt, endedAt: performance.now(), failure: String(error) }),
    );
  });
  request.flushHeaders();
  await new Promise<void>((resolve, reject) => {
    request.once('continue', () => resolve());
    request.once('error', reject);
  });
  return {
    finish() {
      request.end(payload);
      return answered;
    },
  };
}
