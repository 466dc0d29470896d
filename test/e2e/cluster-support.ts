import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import {
  REPO_ROOT,
  commitAll,
  createGitRepo,
  freePort,
  isPortClosed,
  startSwitchyard,
  waitFor,
  waitUntil,
  type ApiClient,
  type SwitchyardProcess,
} from './support.js';

// Helpers for runs of several `serve` processes on PostgreSQL and Redis, and for taking
// those dependencies away: a throwaway database, a private Redis, a TCP proxy to cut.

function adminUrl(): string {
  return (
    process.env['SWITCHYARD_TEST_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

export interface ThrowawayDatabase {
  url: string;
  name: string;
  /** Runs one statement as the admin user on this database (for checks and for locks). */
  query<T extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<T[]>;
  /** A client of its own on this database, for holding locks; ended by drop(). */
  client(): Promise<pg.Client>;
  drop(): Promise<void>;
}

/** Creates an empty database on the test PostgreSQL (migrations are left to Switchyard). */
export async function createThrowawayDatabase(): Promise<ThrowawayDatabase> {
  const name = `switchyard_test_e2e_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  // DROP DATABASE … WITH (FORCE) ends whatever is still connected; that is expected.
  pool.on('error', () => undefined);
  const clients: pg.Client[] = [];
  return {
    url: url.toString(),
    name,
    async query<T extends Record<string, unknown>>(text: string, values?: unknown[]) {
      return (await pool.query(text, values)).rows as T[];
    },
    async client() {
      const client = new pg.Client({ connectionString: url.toString() });
      client.on('error', () => undefined);
      await client.connect();
      clients.push(client);
      return client;
    },
    async drop() {
      for (const client of clients) await client.end().catch(() => undefined);
      await pool.end().catch(() => undefined);
      const cleanup = new pg.Client({ connectionString: adminUrl() });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

/**
 * What every replica on PostgreSQL must share: a fresh Ed25519 signing key (PKCS#8 PEM) and
 * a secrets master key, written into `dir`; plus local git repositories allowed.
 */
export function sharedKeyEnv(dir: string): Record<string, string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signingKey = join(dir, 'jwt-signing-key.pem');
  writeFileSync(signingKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const masterKey = join(dir, 'master.key');
  writeFileSync(masterKey, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return {
    SWITCHYARD_JWT_PRIVATE_KEY_PATH: signingKey,
    SWITCHYARD_MASTER_KEY_PATH: masterKey,
    SWITCHYARD_ALLOW_LOCAL_GIT: 'true',
  };
}

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILLs the server (an outage); start() brings a new one up on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** A private `redis-server` child on a free loopback port, without persistence. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const spawned = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
      child = spawned;
      exited = new Promise((resolve) => spawned.once('exit', () => resolve()));
      await waitUntil(
        'redis-server to accept connections',
        async () => !(await isPortClosed(port)),
        {
          timeoutMs: 10_000,
          intervalMs: 50,
        },
      );
    },
    async kill() {
      child?.kill('SIGKILL');
      await exited;
      child = undefined;
    },
  };
  await server.start();
  return server;
}

export interface TcpProxy {
  port: number;
  /** Refuses new connections and resets every open one (the database is gone). */
  cut(): Promise<void>;
  /** Accepts and forwards connections again. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** Forwards 127.0.0.1:<port> to 127.0.0.1:<targetPort> until cut. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const created = createServer((downstream) => {
        const upstream = connect({ host: '127.0.0.1', port: targetPort });
        for (const socket of [downstream, upstream]) {
          sockets.add(socket);
          socket.once('close', () => sockets.delete(socket));
          socket.on('error', () => undefined);
        }
        downstream.pipe(upstream).pipe(downstream);
        downstream.once('close', () => upstream.destroy());
        upstream.once('close', () => downstream.destroy());
      });
      created.once('error', reject);
      created.listen(port, '127.0.0.1', () => resolve());
      server = created;
    });

  const stop = async () => {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.resetAndDestroy();
    if (closing !== undefined) await new Promise<void>((resolve) => closing.close(() => resolve()));
  };

  await listen();
  return { port, cut: stop, restore: listen, close: stop };
}

/** The URL of `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: TcpProxy): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(proxy.port);
  return parsed.toString();
}

/** Starts `count` serve processes together on one data folder, each with its own ports and spool. */
export async function startReplicas(
  count: number,
  dataDir: string,
  env: Record<string, string>,
): Promise<SwitchyardProcess[]> {
  const ports = [];
  for (let i = 0; i < count; i++)
    ports.push({ apiPort: await freePort(), routerPort: await freePort() });
  // Each process keeps its own audit spool (one file per process, locked while open).
  const started = await Promise.allSettled(
    ports.map((p) =>
      startSwitchyard({
        dataDir,
        ...p,
        env: { AUDIT_SPOOL_DIR: join(dataDir, 'audit', `replica-${p.apiPort}`), ...env },
      }),
    ),
  );
  const failed = started.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    for (const result of started) {
      if (result.status === 'fulfilled') result.value.child.kill('SIGKILL');
    }
    throw (failed as PromiseRejectedResult).reason;
  }
  return started.map((result) => (result as PromiseFulfilledResult<SwitchyardProcess>).value);
}

/** The replicas whose router port accepts connections (the leader's, when all is well). */
export async function routersAnswering(
  replicas: SwitchyardProcess[],
): Promise<SwitchyardProcess[]> {
  const open = await Promise.all(replicas.map(async (r) => !(await isPortClosed(r.routerPort))));
  return replicas.filter((_, index) => open[index]);
}

/** Waits until exactly one of the live replicas runs a router, and returns it. */
export async function waitForLeader(
  replicas: SwitchyardProcess[],
  timeoutMs: number,
): Promise<SwitchyardProcess> {
  let answering: SwitchyardProcess[] = [];
  return waitFor(
    'exactly one router to answer',
    async () => {
      const live = replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
      answering = await routersAnswering(live);
      return answering.length === 1 ? answering[0] : undefined;
    },
    {
      timeoutMs,
      intervalMs: 100,
      detail: () =>
        `\nrouters answering: ${answering.map((r) => r.child.pid).join(', ') || 'none'}` +
        replicas
          .map((r) => {
            const lines = r.logs.filter((l) => /leader|lease/.test(String(l['msg'])));
            return `\n--- replica pid ${r.child.pid} ---\n${lines.map((l) => JSON.stringify(l)).join('\n')}`;
          })
          .join(''),
    },
  );
}

export const PASSWORD = 'a long enough password';

/** Registers an account through `api` and signs in; leaves the access token on `api`. */
export async function registerAndSignIn(
  api: ApiClient,
  email: string,
): Promise<{ accessToken: string; refreshToken: string }> {
  await api.expect(202, 'POST', '/v1/auth/register', { email, password: PASSWORD, name: 'E2E' });
  const tokens = await api.expect<{ accessToken: string; refreshToken: string }>(
    200,
    'POST',
    '/v1/auth/login',
    { email, password: PASSWORD },
  );
  api.token = tokens.accessToken;
  return tokens;
}

/** SIGKILLs the process (if still running) and waits for it to end. */
export async function killHard(server: SwitchyardProcess): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGKILL');
  }
  await server.exited;
}

/** Log lines of `server` whose `msg` is `message`. */
export function logsWith(
  server: SwitchyardProcess,
  message: string,
): Array<Record<string, unknown>> {
  return server.logs.filter((line) => line['msg'] === message);
}

/** A copy of examples/hello-node whose build script sleeps `seconds` (a build to interrupt). */
export function createSlowBuildRepo(dir: string, seconds: number): void {
  createGitRepo(join(REPO_ROOT, 'examples', 'hello-node'), dir);
  const packagePath = join(dir, 'package.json');
  const pkg = JSON.parse(readFileSync(packagePath, 'utf8')) as { scripts: Record<string, string> };
  pkg.scripts['build'] =
    `node -e "setTimeout(() => console.log('slow build done'), ${seconds * 1000})"`;
  writeFileSync(packagePath, JSON.stringify(pkg, null, 2));
  commitAll(dir, 'a build that takes a while');
}

/** Polls a build until it ends; returns its final state. */
export function buildToEnd(api: ApiClient, id: string, timeoutMs: number, detail?: () => string) {
  return waitFor(
    `build ${id} to finish`,
    async () => {
      const build = await api.expect<{ id: string; status: string; attempt: number }>(
        200,
        'GET',
        `/v1/builds/${id}`,
      );
      return ['succeeded', 'failed', 'cancelled'].includes(build.status) ? build : undefined;
    },
    { timeoutMs, intervalMs: 200, ...(detail === undefined ? {} : { detail }) },
  );
}

/** Polls a deployment until it is live or failed; returns its final state. */
export function deploymentToEnd(
  api: ApiClient,
  id: string,
  timeoutMs: number,
  detail?: () => string,
) {
  return waitFor(
    `deployment ${id} to finish`,
    async () => {
      const deployment = await api.expect<{
        id: string;
        status: string;
        failureReason: string | null;
      }>(200, 'GET', `/v1/deployments/${id}`);
      return ['live', 'failed', 'superseded', 'cancelled'].includes(deployment.status)
        ? deployment
        : undefined;
    },
    { timeoutMs, intervalMs: 200, ...(detail === undefined ? {} : { detail }) },
  );
}
