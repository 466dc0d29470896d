import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import type { BenchEnvironment } from './environments.js';
import type { LoadResult, LoadTarget } from './load.js';
import { rssMb } from './processes.js';
import type { BenchContext } from './settings.js';
import { modeOf, startServer, type RunningServer } from './startup-bench.js';

// Long enough for start-up work scheduled right after ready (first polls, timers) to settle.
const IDLE_SETTLE_MS = 1_000;
const RSS_SAMPLE_MS = 50;
const PASSWORD = 'bench password that is long enough';

interface Seeded {
  serviceId: string;
  headers: Record<string, string>;
}

async function call<T>(
  server: RunningServer,
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await fetch(`${server.apiUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/**
 * A new account owning one project with one service, made over HTTP as a client would. The
 * service's git URL is a local path, so nothing looks up a name outside this machine.
 */
async function seed(server: RunningServer): Promise<Seeded> {
  const stamp = `${Date.now().toString(36)}${process.pid}`;
  const email = `bench-${stamp}@example.com`;
  await call(server, 'POST', '/v1/auth/register', { email, password: PASSWORD, name: 'Bench' });
  const login = await call<{ accessToken: string }>(server, 'POST', '/v1/auth/login', {
    email,
    password: PASSWORD,
  });
  const headers = { authorization: `Bearer ${login.accessToken}` };
  const slug = `half-${stamp}`;
  await call(server, 'POST', '/v1/projects', { name: 'Half peak', slug }, headers);
  // Never cloned: the routes measured only read and change the service. Outside the data
  // folder, where local repositories are refused.
  const gitUrl = join(tmpdir(), 'switchyard-bench-repo');
  const service = await call<{ id: string }>(
    server,
    'POST',
    `/v1/projects/${slug}/services`,
    { name: 'web', gitUrl },
    headers,
  );
  return { serviceId: service.id, headers };
}

/** The highest RSS of a process, sampled until stopped. */
function watchPeakRss(pid: number): { stop(): number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, RSS_SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMb(pid));
    },
  };
}

/** The server process, and on PostgreSQL the backends serving the throwaway database. */
function helperPidsOf(server: RunningServer, environment: BenchEnvironment) {
  const url = environment.env['DATABASE_URL'];
  return async (): Promise<number[]> => {
    if (url === undefined) return [server.pid];
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const backends = await client.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      return [server.pid, ...backends.rows.map((row) => row.pid)];
    } finally {
      await client.end();
    }
  };
}

/**
 * Finds the route's peak (closed loop at the configured connections), then offers half of it
 * at a fixed rate (open loop) and records what was achieved and its p99.
 */
async function atHalfPeak(section: string, target: LoadTarget, context: BenchContext) {
  const { load, settings, report } = context;
  await load.run(target, settings.connections, settings.warmUpS);
  const peak = await load.run(target, settings.connections, settings.durationS);
  const rate = Math.max(1, Math.round(peak.requestsPerSec / 2));
  const half = await load.run(target, settings.connections, settings.durationS, rate);
  const relabel = (result: LoadResult, label: string): LoadResult => ({ ...result, label });
  report.addFigure(section, relabel(peak, `peak: closed loop, ${settings.connections} conns`));
  report.addFigure(section, relabel(half, `half peak: ${rate} req/s offered`));
  report.addCheck({
    name: `${section}: at half peak`,
    target: '-',
    measured: `${half.requestsPerSec.toFixed(0)} req/s of ${rate} offered, p99 ${half.p99Ms.toFixed(1)} ms`,
    isMet: undefined,
  });
}

/**
 * Part 6 on one backend: the compiled `switchyard serve` (role all, access log to /dev/null)
 * started warm on the backend's state; its idle RSS; the main read and a main write at half
 * of their peak; the highest RSS seen during those runs.
 */
export async function benchHalfPeak(
  environment: BenchEnvironment,
  context: BenchContext,
): Promise<void> {
  const options = {
    env: {
      SWITCHYARD_ALLOW_LOCAL_GIT: 'true',
      // The bench's user is not the instance admin when other parts signed up first.
      SWITCHYARD_GIT_LOCAL_ROOTS: tmpdir(),
      LOG_LEVEL: 'info',
    },
    discardStdout: true,
  };
  // An unmeasured start first: on a fresh embedded data folder it creates the database,
  // which leaves that process far larger than a warm start's.
  await (await startServer(environment, 'all', options)).child.stop(30_000);
  const server = await startServer(environment, 'all', options);
  try {
    await delay(IDLE_SETTLE_MS);
    const idleRssMb = rssMb(server.pid);
    const { serviceId, headers } = await seed(server);
    const url = `${server.apiUrl}/v1/services/${serviceId}`;
    const helperPids = helperPidsOf(server, environment);
    const backend = environment.backend;

    const watch = watchPeakRss(server.pid);
    const read = { label: 'read', url, headers, helperPids };
    await atHalfPeak(`half peak: GET /v1/services/:id (${backend})`, read, context);
    const write: LoadTarget = {
      label: 'write',
      url,
      method: 'PATCH',
      body: JSON.stringify({ branch: 'main' }),
      headers: { ...headers, 'content-type': 'application/json' },
      helperPids,
    };
    await atHalfPeak(`half peak: PATCH /v1/services/:id (${backend})`, write, context);
    const loadedRssMb = watch.stop();

    const mode = `${modeOf(environment)}, role all`;
    context.report.addCheck({
      name: `idle RSS of serve, ${mode}`,
      target: '-',
      measured: `${idleRssMb.toFixed(0)} MB`,
      isMet: undefined,
    });
    context.report.addCheck({
      name: `peak RSS of serve under load, ${mode}`,
      target: '-',
      measured: `${loadedRssMb.toFixed(0)} MB`,
      isMet: undefined,
    });
  } finally {
    await server.child.stop(30_000);
  }
}
