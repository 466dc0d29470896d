import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiClient,
  REPO_ROOT,
  createGitRepo,
  ensureBuilt,
  killProcessesUnder,
  processesWithCwdUnder,
  routerGet,
  stopSwitchyard,
  waitFor,
  waitUntil,
  type SwitchyardProcess,
} from './support.js';
import {
  buildToEnd,
  createSlowBuildRepo,
  createThrowawayDatabase,
  deploymentToEnd,
  killHard,
  registerAndSignIn,
  sharedKeyEnv,
  startReplicas,
  waitForLeader,
  type ThrowawayDatabase,
} from './cluster-support.js';

// Compiled once at import, before any test's clock starts (the product runs from dist/).
ensureBuilt();

// Two replicas share the work. The one running a build is SIGKILLed mid-build: the other
// retries it and exactly one release results. The leader is SIGKILLed mid-deployment: the
// other takes over, exactly one deployment ends live, and no instance is left without a
// Switchyard process above it.

const STALE_MS = 3_000;
const HELLO = 'Hello from hello-node v1\n';

describe('SIGKILL of the process doing the work', { timeout: 120_000 }, () => {
  let root = '';
  let dataDir = '';
  let database: ThrowawayDatabase | undefined;
  let replicas: SwitchyardProcess[] = [];
  let env: Record<string, string> = {};
  let token = '';
  const host = 'web.production.kill.localhost';
  const live = () =>
    replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
  const apiOf = (replica: SwitchyardProcess | undefined) => {
    assert.ok(replica !== undefined, 'no replica left');
    const api = new ApiClient(replica.api.baseUrl);
    api.token = token;
    return api;
  };
  const detail = () =>
    replicas.map((r) => `\n--- replica pid ${r.child.pid} ---\n${r.tail(12)}`).join('');
  /** The replica whose worker id (`host-pid-random`) is in `workerId`. */
  const replicaOf = (workerId: string | null | undefined) =>
    replicas.find((r) => workerId?.includes(`-${r.child.pid}-`) === true);

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-kill-')));
      dataDir = join(root, 'data');
      createSlowBuildRepo(join(root, 'slow'), 5);
      createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), join(root, 'hello-node'));
      database = await createThrowawayDatabase();
      env = {
        DATABASE_URL: database.url,
        ...sharedKeyEnv(root),
        SWITCHYARD_WORKER_STALE_MS: String(STALE_MS),
        SWITCHYARD_HEARTBEAT_INTERVAL_MS: '500',
        DEPLOY_HEALTH_TIMEOUT_MS: '20000',
        DEPLOY_DRAIN_MS: '500',
      };
      replicas = await startReplicas(2, dataDir, env);
      const api = apiOf(replicas[0]);
      token = (await registerAndSignIn(api, 'owner@example.com')).accessToken;
      await api.expect(201, 'POST', '/v1/projects', { name: 'Kill', slug: 'kill' });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await Promise.all(replicas.map((replica) => stopSwitchyard(replica, 10_000)));
    if (dataDir !== '') killProcessesUnder(root);
    await database?.drop();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('retries a build whose process was SIGKILLed on the other replica: one release', async (t) => {
    assert.ok(database !== undefined);
    const api = apiOf(replicas[0]);
    const service = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/kill/services', {
      name: 'slow',
      gitUrl: join(root, 'slow'),
    });
    const { id } = await api.expect<{ id: string }>(
      202,
      'POST',
      `/v1/services/${service.id}/builds`,
      {},
    );
    const runner = await waitFor(
      'the build to run on a replica',
      async () => {
        const [row] = await database!.query<{ status: string; worker_id: string | null }>(
          'SELECT status, worker_id FROM builds WHERE id = $1',
          [id],
        );
        return row?.status === 'running' ? replicaOf(row.worker_id) : undefined;
      },
      { timeoutMs: 30_000, detail },
    );
    // Kill it inside the build script's sleep, after the clone and install.
    await waitFor(
      'the build script to start',
      async () => {
        const logs = await api.expect<{ lines: Array<{ line: string }> }>(
          200,
          'GET',
          `/v1/builds/${id}/logs`,
        );
        return logs.lines.some((entry) => entry.line.includes('setTimeout')) ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, detail },
    );
    const killedAt = performance.now();
    await killHard(runner);

    const survivor = apiOf(live()[0]);
    const build = await buildToEnd(survivor, id, 60_000, detail);
    const retryMs = Math.round(performance.now() - killedAt);
    assert.equal(build.status, 'succeeded');
    assert.equal(build.attempt, 2);
    const releases = await survivor.expect<{ data: unknown[] }>(
      200,
      'GET',
      `/v1/services/${service.id}/releases`,
    );
    assert.equal(releases.data.length, 1, 'not exactly one release');
    const logs = await survivor.expect<{ lines: Array<{ line: string }> }>(
      200,
      'GET',
      `/v1/builds/${id}/logs`,
    );
    const lines = logs.lines.map((entry) => entry.line);
    assert.equal(lines.filter((line) => line.startsWith('-----> Release v')).length, 1);
    assert.equal(lines.filter((line) => line.includes('Retrying build (attempt 2)')).length, 1);
    t.diagnostic(`build retried and succeeded ${retryMs} ms after its process was killed`);

    // Back to two replicas for the next test.
    replicas.push(...(await startReplicas(1, dataDir, env)));
  });

  it('finishes a deployment whose leader was SIGKILLed mid-way: one live deployment, no orphan', async (t) => {
    assert.ok(database !== undefined);
    const api = apiOf(live()[0]);
    const service = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/kill/services', {
      name: 'web',
      gitUrl: join(root, 'hello-node'),
      // Slow to become healthy, so that the deployment is surely in progress at the kill.
      runtime: { startCommand: 'sleep 3; exec node server.js' },
    });
    const build = await api.expect<{ id: string }>(
      202,
      'POST',
      `/v1/services/${service.id}/builds`,
      {},
    );
    assert.equal((await buildToEnd(api, build.id, 60_000, detail)).status, 'succeeded');

    const leader = await waitForLeader(live(), 15_000);
    const { id } = await api.expect<{ id: string }>(
      202,
      'POST',
      `/v1/services/${service.id}/deployments`,
      {
        environment: 'production',
      },
    );
    await waitUntil(
      'an instance to start',
      () => processesWithCwdUnder(join(dataDir, 'artifacts')).length > 0,
      {
        timeoutMs: 20_000,
        detail,
      },
    );
    const [before] = await database.query<{ status: string }>(
      'SELECT status FROM deployments WHERE id = $1',
      [id],
    );
    assert.equal(before?.status, 'in_progress');
    const killedAt = performance.now();
    await killHard(leader);

    const survivor = apiOf(live()[0]);
    const deployment = await deploymentToEnd(survivor, id, 60_000, detail);
    assert.equal(deployment.status, 'live', `${deployment.failureReason}${detail()}`);
    const successor = await waitForLeader(live(), 5_000);
    await waitUntil(
      'the app to answer through the new leader',
      async () =>
        (await routerGet(successor.routerPort, host, '/')).body.toString('utf8') === HELLO,
      { timeoutMs: 15_000, detail },
    );
    const recoveredMs = Math.round(performance.now() - killedAt);

    const rows = await database.query<{ count: number }>(
      "SELECT count(*)::int AS count FROM deployments WHERE service_id = $1 AND status = 'live'",
      [service.id],
    );
    assert.equal(rows[0]?.count, 1, 'not exactly one live deployment');
    // Every instance process descends from a running Switchyard; none was left to init.
    const livePids = new Set(live().map((r) => r.child.pid));
    await waitUntil(
      'only instances of a live replica to run',
      () =>
        processesWithCwdUnder(join(dataDir, 'artifacts')).every((pid) =>
          hasAncestor(pid, livePids),
        ),
      { timeoutMs: 10_000, detail },
    );
    assert.ok(processesWithCwdUnder(join(dataDir, 'artifacts')).length > 0);
    t.diagnostic(`deployment live and served by the new leader ${recoveredMs} ms after the kill`);
  });
});

/** True when one of `pid`'s ancestors (read from /proc) is in `ancestors`. */
function hasAncestor(pid: number, ancestors: Set<number | undefined>): boolean {
  for (let current = pid, depth = 0; current > 1 && depth < 20; depth++) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${current}/stat`, 'utf8');
    } catch {
      return true; // it exited meanwhile: not an orphan any more
    }
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ancestors.has(parent)) return true;
    current = parent;
  }
  return false;
}
