import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
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
  PASSWORD,
  createThrowawayDatabase,
  killHard,
  registerAndSignIn,
  routersAnswering,
  startReplicas,
  waitForLeader,
  sharedKeyEnv,
  type ThrowawayDatabase,
} from './cluster-support.js';

// Compiled once at import, before any test's clock starts (the product runs from dist/).
ensureBuilt();

// Three `switchyard serve` processes on one fresh PostgreSQL database and one Redis behave
// as one service: migrations once, each job once, one leader running the router and the
// reconciler, shared revocations and rate limits, and a new leader when the old one dies.

const REPLICAS = 3;
const STALE_MS = 3_000;
const BUILDS = 4;
const ACCOUNT_LIMIT = 5;
const HELLO = 'Hello from hello-node v1\n';

type Build = { id: string; status: string; attempt: number; releaseId: string | null };
type Accepted = { id: string };

describe('three replicas on one PostgreSQL and Redis', { timeout: 120_000 }, () => {
  let root = '';
  let dataDir = '';
  let database: ThrowawayDatabase | undefined;
  let replicas: SwitchyardProcess[] = [];
  let serviceId = '';
  let token = '';
  let instancePids: number[] = [];
  const host = 'web.production.cluster.localhost';
  const detail = () =>
    replicas.map((r, i) => `\n--- replica ${i} (pid ${r.child.pid}) ---\n${r.tail(15)}`).join('');
  const clientOf = (replica: SwitchyardProcess) => {
    const api = new ApiClient(replica.api.baseUrl);
    api.token = token;
    return api;
  };

  before(
    async () => {
      root = realpathSync(mkdtempSync(join(tmpdir(), 'switchyard-replicas-')));
      dataDir = join(root, 'data');
      createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), join(root, 'hello-node'));
      database = await createThrowawayDatabase();
      const redisUrl = process.env['SWITCHYARD_TEST_REDIS_URL'] || 'redis://127.0.0.1:6379/15';
      replicas = await startReplicas(REPLICAS, dataDir, {
        DATABASE_URL: database.url,
        DATABASE_POOL_MAX: '5',
        REDIS_URL: redisUrl,
        REDIS_KEY_PREFIX: `${database.name}:`,
        ...sharedKeyEnv(root),
        SWITCHYARD_WORKER_STALE_MS: String(STALE_MS),
        SWITCHYARD_HEARTBEAT_INTERVAL_MS: '500',
        SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: String(ACCOUNT_LIMIT),
        DEPLOY_HEALTH_TIMEOUT_MS: '15000',
        DEPLOY_DRAIN_MS: '500',
      });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await Promise.all(replicas.map((replica) => stopSwitchyard(replica, 10_000)));
    if (dataDir !== '') killProcessesUnder(dataDir);
    await database?.drop();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('applies every migration exactly once although the replicas started together', async () => {
    assert.ok(database !== undefined);
    const files = readdirSync(join(REPO_ROOT, 'migrations')).filter((f) => f.endsWith('.sql'));
    const rows = await database.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    assert.equal(rows.length, files.length);
    const applied = replicas.flatMap((replica) =>
      replica.logs.filter((line) => line['msg'] === 'migration applied'),
    );
    assert.equal(applied.length, files.length, 'a migration was applied by two replicas');
  });

  it('runs the router on exactly one replica: the holder of the leader lease', async () => {
    assert.ok(database !== undefined);
    const leader = await waitForLeader(replicas, 10_000);
    const [lease] = await database.query<{ holder: string }>(
      "SELECT holder FROM leases WHERE name = 'deployment-reconciler' AND expires_at > now()",
    );
    assert.ok(lease !== undefined, 'no live lease');
    assert.match(lease.holder, new RegExp(`-${leader.child.pid}-`));
    assert.equal((await routersAnswering(replicas)).length, 1);
  });

  it('runs each of several builds once: as many releases, no log line twice', async () => {
    const api = replicas[0]?.api;
    assert.ok(api !== undefined);
    token = (await registerAndSignIn(api, 'owner@example.com')).accessToken;
    await api.expect(201, 'POST', '/v1/projects', { name: 'Cluster', slug: 'cluster' });
    const service = await api.expect<{ id: string }>(201, 'POST', '/v1/projects/cluster/services', {
      name: 'web',
      gitUrl: join(root, 'hello-node'),
      branch: 'main',
    });
    serviceId = service.id;

    // Each replica's API enqueues some; any replica's worker may run any of them.
    const ids: string[] = [];
    for (let i = 0; i < BUILDS; i++) {
      const replica = replicas[i % REPLICAS];
      assert.ok(replica !== undefined);
      ids.push(
        (
          await clientOf(replica).expect<Accepted>(
            202,
            'POST',
            `/v1/services/${serviceId}/builds`,
            {},
          )
        ).id,
      );
    }
    const builds = await Promise.all(
      ids.map((id) =>
        waitFor(
          `build ${id} to finish`,
          async () => {
            const build = await api.expect<Build>(200, 'GET', `/v1/builds/${id}`);
            return ['succeeded', 'failed', 'cancelled'].includes(build.status) ? build : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 250, detail },
        ),
      ),
    );
    assert.deepEqual(
      builds.map((build) => [build.status, build.attempt]),
      ids.map(() => ['succeeded', 1]),
    );
    const releases = await api.expect<{ data: Array<{ version: number }> }>(
      200,
      'GET',
      `/v1/services/${serviceId}/releases?limit=100`,
    );
    assert.deepEqual(releases.data.map((r) => r.version).sort(), [1, 2, 3, 4]);

    for (const id of ids) {
      const logs: { lines: Array<{ line: string }> } = await api.expect(
        200,
        'GET',
        `/v1/builds/${id}/logs`,
      );
      const lines: string[] = logs.lines.map((entry) => entry.line);
      const created = lines.filter((line) => line.startsWith('-----> Release v'));
      assert.equal(created.length, 1, `build ${id} logs:\n${lines.join('\n')}`);
      assert.equal(lines.filter((line) => line.includes('Retrying build')).length, 0);
    }
  });

  it('deploys through any replica and serves the app from the leader only', async () => {
    const api = replicas[1] === undefined ? undefined : clientOf(replicas[1]);
    assert.ok(api !== undefined);
    const { id } = await api.expect<Accepted>(
      202,
      'POST',
      `/v1/services/${serviceId}/deployments`,
      {
        environment: 'production',
      },
    );
    const deployment = await waitFor(
      'the deployment to finish',
      async () => {
        const d = await api.expect<{ status: string }>(200, 'GET', `/v1/deployments/${id}`);
        return ['live', 'failed'].includes(d.status) ? d : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, detail },
    );
    assert.equal(deployment.status, 'live');
    const leader = await waitForLeader(replicas, 5_000);
    const answer = await routerGet(leader.routerPort, host, '/');
    assert.equal(answer.body.toString('utf8'), HELLO);
    instancePids = processesWithCwdUnder(join(dataDir, 'artifacts'));
    assert.ok(instancePids.length > 0, 'no instance process under the artifacts folder');
  });

  it('refuses, on the other replicas, a token whose session was logged out on one', async () => {
    const [first, second, third] = replicas;
    assert.ok(first !== undefined && second !== undefined && third !== undefined);
    const api = new ApiClient(first.api.baseUrl);
    const tokens = await registerAndSignIn(api, 'leaver@example.com');
    for (const other of [second, third]) {
      const client = new ApiClient(other.api.baseUrl);
      client.token = tokens.accessToken;
      await client.expect(200, 'GET', '/v1/me');
    }
    await api.expect(204, 'POST', '/v1/auth/logout');
    const loggedOutAt = Date.now();
    for (const other of [second, third]) {
      const client = new ApiClient(other.api.baseUrl);
      client.token = tokens.accessToken;
      await waitUntil(
        'the logout to reach the replica',
        async () => (await client.request('GET', '/v1/me')).status === 401,
        {
          timeoutMs: 3_000,
          intervalMs: 20,
        },
      );
    }
    assert.ok(Date.now() - loggedOutAt < 3_000);
  });

  it('counts sign-in attempts across replicas: attempt limit+1 is refused with 429', async () => {
    const first = replicas[0];
    assert.ok(first !== undefined);
    const email = 'limited@example.com';
    await first.api.expect(202, 'POST', '/v1/auth/register', {
      email,
      password: PASSWORD,
      name: 'L',
    });
    const statuses: number[] = [];
    for (let attempt = 0; attempt <= ACCOUNT_LIMIT; attempt++) {
      const replica = replicas[attempt % REPLICAS];
      assert.ok(replica !== undefined);
      const response = await new ApiClient(replica.api.baseUrl).request('POST', '/v1/auth/login', {
        email,
        password: PASSWORD,
      });
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [...Array<number>(ACCOUNT_LIMIT).fill(200), 429]);
  });

  it('moves the leadership within seconds when the leader is SIGKILLed and serves the app again', async (t) => {
    const leader = await waitForLeader(replicas, 5_000);
    const killedAt = Date.now();
    await killHard(leader);
    const survivors = replicas.filter((replica) => replica !== leader);

    const successor = await waitForLeader(survivors, STALE_MS + 10_000);
    await waitUntil(
      'the app to answer through the new leader',
      async () =>
        (await routerGet(successor.routerPort, host, '/')).body.toString('utf8') === HELLO,
      { timeoutMs: 20_000, intervalMs: 100, detail },
    );
    const takeoverMs = Date.now() - killedAt;
    assert.ok(takeoverMs < STALE_MS + 10_000, `took ${takeoverMs} ms`);
    // The dead leader's instance was reaped by the new leader, which started its own.
    const now = processesWithCwdUnder(join(dataDir, 'artifacts'));
    assert.equal(now.filter((pid) => instancePids.includes(pid)).length, 0, 'an orphan survived');
    assert.equal(now.length, instancePids.length);
    assert.equal((await routersAnswering(survivors)).length, 1);
    t.diagnostic(`leader takeover and app served again after ${takeoverMs} ms`);
  });
});
