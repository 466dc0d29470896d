import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO_ROOT,
  commitAll,
  createGitRepo,
  ensureBuilt,
  freePort,
  isPortClosed,
  killProcessesUnder,
  processesWithCwdUnder,
  readEventStream,
  routerGet,
  startSwitchyard,
  startTraffic,
  stopSwitchyard,
  waitFor,
  waitUntil,
  type ApiClient,
  type SwitchyardProcess,
  type TrafficSample,
} from './support.js';

// The whole product as a user meets it: the compiled CLI as a child process, real git
// repositories, HTTP to the API and through the router. The steps build on each other.

const V1 = 'Hello from hello-node v1';
const V2 = 'Hello from hello-node v2, now with more switching';
const HEALTH_TIMEOUT_MS = 5_000;
const DRAIN_MS = 1_500;
const SERVER_ENV = {
  DEPLOY_HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
  DEPLOY_DRAIN_MS: String(DRAIN_MS),
};

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+LQmlQ',
  'Yx2eqzDV+xeG8kx/sQFV18S5JhzGeIJNA72wSeukEPojtqUyX2J0CciPBh7eqclQ',
  '-----END PRIVATE KEY-----',
  '',
].join('\n');

const VARIABLES: Record<string, string> = {
  LITERAL_HOME: '$HOME',
  SHELL_LOOKALIKE: 'a$HOME${PATH}$(id)`id`\\n',
  QUOTES: `it's "double" and 'single'`,
  HASH: 'value # not a comment',
  EQUALS: 'key=value==',
  SPACES: '  padded  with  spaces  ',
  UNICODE: 'héllo wörld — 日本語 🚀',
  PEM_KEY: PEM,
};

// A build script whose output is computed, so finding the output proves the script ran
// (npm also echoes the command line itself).
const FAILING_BUILD_SCRIPT =
  "node -e \"console.log('compiled ' + 7 * 6 + ' modules'); " +
  "console.error('syntax error ' + 'at line 9'); process.exit(3)\"";

type Build = { id: string; status: string; failureReason: string | null; releaseId: string | null };
type Deployment = { id: string; status: string; failureReason: string | null };
type Accepted = { id: string; statusUrl: string };
type LogLines = { lines: Array<{ line: string }> };
type Status = { isLive: boolean; isHealthy: boolean; release: { version: number } | null };

const BUILD_ENDS = ['succeeded', 'failed', 'cancelled'];
const DEPLOYMENT_ENDS = ['live', 'failed', 'superseded', 'cancelled'];

describe('deploy flow through the compiled product', { timeout: 180_000 }, () => {
  let root = '';
  let dataDir = '';
  let appRepo = '';
  let server: SwitchyardProcess | undefined;
  let api: ApiClient;
  let serviceId = '';
  let apiPort = 0;
  let routerPort = 0;
  const host = 'web.production.e2e.localhost';

  const detail = () => `\n--- switchyard output ---\n${server?.tail() ?? '(not running)'}`;
  const appAnswer = async () => answerOf((await routerGet(routerPort, host, '/')).body);
  const instancePids = () => processesWithCwdUnder(join(dataDir, 'artifacts')).sort();

  const startBuild = (id: string) =>
    api.expect<Accepted>(202, 'POST', `/v1/services/${id}/builds`, {});
  const deploy = () =>
    api.expect<Accepted>(202, 'POST', `/v1/services/${serviceId}/deployments`, {
      environment: 'production',
    });
  const productionStatus = () =>
    api.expect<Status>(200, 'GET', `/v1/services/${serviceId}/status?environment=production`);
  const buildCount = async () => {
    const page = await api.expect<{ data: Build[] }>(
      200,
      'GET',
      `/v1/services/${serviceId}/builds?limit=100`,
    );
    return page.data.length;
  };

  const buildToEnd = (id: string) =>
    waitFor(
      `build ${id} to finish`,
      async () => {
        const build = await api.expect<Build>(200, 'GET', `/v1/builds/${id}`);
        return BUILD_ENDS.includes(build.status) ? build : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, detail },
    );

  const deploymentToEnd = (id: string, timeoutMs = 30_000) =>
    waitFor(
      `deployment ${id} to finish`,
      async () => {
        const deployment = await api.expect<Deployment>(200, 'GET', `/v1/deployments/${id}`);
        return DEPLOYMENT_ENDS.includes(deployment.status) ? deployment : undefined;
      },
      { timeoutMs, intervalMs: 100, detail },
    );

  before(
    async () => {
      ensureBuilt();
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-e2e-')));
      dataDir = join(root, 'data');
      appRepo = join(root, 'hello-node');
      createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), appRepo);

      apiPort = await freePort();
      routerPort = await freePort();
      server = await startSwitchyard({ dataDir, apiPort, routerPort, env: SERVER_ENV });
      api = server.api;

      const credentials = { email: 'e2e@example.com', password: 'a long enough password' };
      await api.expect(202, 'POST', '/v1/auth/register', { ...credentials, name: 'E2E' });
      const tokens = await api.expect<{ accessToken: string }>(
        200,
        'POST',
        '/v1/auth/login',
        credentials,
      );
      api.token = tokens.accessToken;

      await api.expect(201, 'POST', '/v1/projects', { name: 'E2E Shop', slug: 'e2e' });
      const service = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/e2e/services', {
        name: 'web',
        gitUrl: appRepo,
        branch: 'main',
      });
      serviceId = service.id;
    },
    { timeout: 120_000 },
  );

  after(async () => {
    if (server !== undefined) await stopSwitchyard(server, 10_000);
    if (dataDir !== '') killProcessesUnder(dataDir);
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('builds, deploys and routes the app, every variable arriving byte-exact', async () => {
    await api.expect(200, 'PUT', `/v1/services/${serviceId}/env`, { variables: VARIABLES });
    const build = await buildToEnd((await startBuild(serviceId)).id);
    assert.equal(build.status, 'succeeded', `build ${build.status}: ${build.failureReason}`);
    const deployment = await deploymentToEnd((await deploy()).id);
    assert.equal(deployment.status, 'live', `deployment: ${deployment.failureReason}${detail()}`);

    assert.equal(await appAnswer(), 'v1');
    for (const [name, value] of Object.entries(VARIABLES)) {
      const echoed = await routerGet(routerPort, host, `/env/${name}`);
      assert.equal(echoed.status, 200, `variable ${name} is not set in the app`);
      assert.deepEqual(echoed.body, Buffer.from(value, 'utf8'), `variable ${name} changed`);
    }
  });

  it('runs the app as a workload user of its own, not as Switchyard (when run as root)', (t) => {
    if (process.getuid?.() !== 0) return t.skip('isolation needs root');
    const uids = instancePids().map((pid) => {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    });
    assert.ok(uids.length > 0, 'no instance process found under the data folder');
    for (const uid of uids) assert.ok(uid > 200_000, `an instance runs as uid ${uid}`);
  });

  it('streams the next build log as server-sent events ending with an end event', async () => {
    const serverJs = join(appRepo, 'server.js');
    writeFileSync(serverJs, readFileSync(serverJs, 'utf8').replace(`'${V1}'`, `'${V2}'`));
    commitAll(appRepo, 'say v2');

    const { id } = await startBuild(serviceId);
    const url = `${api.baseUrl}/v1/builds/${id}/logs?follow=true`;
    const events = await readEventStream(url, api.token ?? '', 'end', 60_000);

    const last = events.at(-1);
    assert.ok(last?.event === 'end', `no end event: ${JSON.stringify(events.slice(-3))}`);
    assert.equal((JSON.parse(last.data) as Build).status, 'succeeded');
    const streamed = events
      .filter((event) => event.event === 'log')
      .map((event) => (JSON.parse(event.data) as { line: string }).line);
    const stored = await api.expect<LogLines>(200, 'GET', `/v1/builds/${id}/logs`);
    assert.ok(streamed.length > 0, 'no log events before the end event');
    assert.deepEqual(
      streamed,
      stored.lines.map((entry) => entry.line),
    );
  });

  it('redeploys v2 under continuous traffic without one failed request', async () => {
    const v1Pids = instancePids();
    assert.ok(v1Pids.length > 0, 'no v1 instance process found under the data folder');
    const traffic = startTraffic(routerPort, host, 5, answerOf);
    let samples: TrafficSample[] = [];
    try {
      await waitUntil('v1 traffic to flow', () => traffic.samples.length >= 25, {
        timeoutMs: 5_000,
      });
      const deployment = await deploymentToEnd((await deploy()).id);
      assert.equal(deployment.status, 'live', `v2 deployment: ${deployment.failureReason}`);

      // Keep the traffic flowing until the v1 instances have drained and exited.
      await waitUntil('v1 instances to exit', () => v1Pids.every(isGone), {
        timeoutMs: DRAIN_MS + 10_000,
        detail,
      });
      const afterExit = traffic.samples.length;
      await waitUntil('traffic after v1 exited', () => traffic.samples.length >= afterExit + 25, {
        timeoutMs: 5_000,
      });
    } finally {
      samples = await traffic.stop();
    }
    assertSwitchedOnce(samples);
  });

  it('rolls back to v1 within seconds without a new build', async () => {
    const buildsBefore = await buildCount();
    await api.expect(202, 'POST', `/v1/services/${serviceId}/rollback`, {
      environment: 'production',
    });
    await waitUntil('v1 to answer again', async () => (await appAnswer()) === 'v1', {
      timeoutMs: 10_000,
      detail,
    });

    assert.equal(await buildCount(), buildsBefore, 'the rollback created a build');
    assert.equal((await productionStatus()).release?.version, 1);
  });

  it('fails a build whose build script fails, keeping its output in the logs', async () => {
    const brokenRepo = join(root, 'broken');
    createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), brokenRepo);
    const packagePath = join(brokenRepo, 'package.json');
    const pkg = JSON.parse(readFileSync(packagePath, 'utf8')) as {
      scripts: Record<string, string>;
    };
    pkg.scripts['build'] = FAILING_BUILD_SCRIPT;
    writeFileSync(packagePath, JSON.stringify(pkg, null, 2));
    commitAll(brokenRepo, 'add a failing build script');

    const service = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/e2e/services', {
      name: 'broken',
      gitUrl: brokenRepo,
    });
    const build = await buildToEnd((await startBuild(service.id)).id);
    assert.equal(build.status, 'failed');
    assert.equal(build.releaseId, null);

    const logs = await api.expect<LogLines>(200, 'GET', `/v1/builds/${build.id}/logs`);
    const text = logs.lines.map((entry) => entry.line).join('\n');
    assert.match(text, /compiled 42 modules/);
    assert.match(text, /syntax error at line 9/);
  });

  it('fails a deploy that never turns healthy while the live release keeps serving', async () => {
    const livePids = instancePids();
    await api.expect(200, 'PATCH', `/v1/services/${serviceId}`, {
      runtime: { healthCheckPath: '/nope' },
    });
    const { id } = await deploy();
    const traffic = startTraffic(routerPort, host, 1, answerOf);
    let deployment: Deployment;
    try {
      deployment = await deploymentToEnd(id, HEALTH_TIMEOUT_MS + 20_000);
    } finally {
      await traffic.stop();
    }

    assert.equal(deployment.status, 'failed');
    assert.match(deployment.failureReason ?? '', /health/i);
    assert.deepEqual(failuresOf(traffic.samples), []);
    assert.ok(
      traffic.samples.every((sample) => sample.answer === 'v1'),
      'not v1 that answered',
    );
    const status = await productionStatus();
    assert.equal(status.release?.version, 1);
    assert.equal(status.isHealthy, true);
    await waitUntil('the unhealthy instance to stop', () => sameSet(instancePids(), livePids), {
      timeoutMs: 10_000,
      detail,
    });

    await api.expect(200, 'PATCH', `/v1/services/${serviceId}`, {
      runtime: { healthCheckPath: '/healthz' },
    });
  });

  it('exits 0 on SIGTERM leaving no process behind, then serves v1 after a restart', async () => {
    assert.ok(server !== undefined);
    assert.ok(processesWithCwdUnder(dataDir).length > 0, 'no instance runs before the stop');
    const code = await stopSwitchyard(server, 30_000);
    assert.equal(code, 0, `switchyard exited with ${code}${detail()}`);
    assert.equal(await isPortClosed(routerPort), true, 'the router still answers');
    assert.equal(await isPortClosed(apiPort), true, 'the API still answers');
    assert.deepEqual(processesWithCwdUnder(dataDir), [], 'processes outlived switchyard');

    server = await startSwitchyard({ dataDir, apiPort, routerPort, env: SERVER_ENV });
    server.api.token = api.token;
    api = server.api;
    await waitUntil('v1 to answer after the restart', async () => (await appAnswer()) === 'v1', {
      timeoutMs: 20_000,
      detail,
    });
    const status = await productionStatus();
    assert.equal(status.isLive, true);
    assert.equal(status.release?.version, 1);
  });
});

function answerOf(body: Buffer): string | undefined {
  const text = body.toString('utf8');
  if (text === `${V1}\n`) return 'v1';
  if (text === `${V2}\n`) return 'v2';
  return undefined;
}

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

function sameSet(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((value) => b.includes(value));
}

function failuresOf(samples: TrafficSample[]): string[] {
  return samples
    .filter((sample) => sample.failure !== undefined)
    .map((sample) => `loop ${sample.loop}: ${sample.failure}`);
}

/**
 * Zero failures; every loop starts on v1, ends on v2 and never goes back; and no request
 * begun after some request had already received v2 is answered by v1.
 */
function assertSwitchedOnce(samples: TrafficSample[]): void {
  const failures = failuresOf(samples);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${samples.length} failed`);

  for (const loop of new Set(samples.map((sample) => sample.loop))) {
    const answers = samples.filter((sample) => sample.loop === loop).map((s) => s.answer);
    const firstV2 = answers.indexOf('v2');
    assert.ok(firstV2 > 0, `loop ${loop} did not go from v1 to v2: ${answers.join(',')}`);
    assert.ok(
      answers.slice(firstV2).every((answer) => answer === 'v2'),
      `loop ${loop} went back`,
    );
  }

  const v2Times = samples.filter((sample) => sample.answer === 'v2').map((s) => s.endedAt);
  const firstV2Answered = Math.min(...v2Times);
  const lateV1 = samples.filter((s) => s.answer === 'v1' && s.startedAt > firstV2Answered);
  assert.equal(lateV1.length, 0, `${lateV1.length} requests got v1 after v2 had answered`);
}
