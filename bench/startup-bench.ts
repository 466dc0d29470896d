import { existsSync, readdirSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { BenchEnvironment } from './environments.js';
import { cpuMicrosOf, freePort, rssMb, startChild, statusOf, type Child } from './processes.js';
import type { BenchContext } from './settings.js';

export const WARM_START_TARGET_MS = 1_500;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${REPO_ROOT}bin/switchyard.js`;
const READY_DEADLINE_MS = 60_000;
const POLL_INTERVAL_MS = 10;
// Long enough for start-up work scheduled right after ready (first polls, timers) to settle.
const IDLE_SETTLE_MS = 1_000;

interface StartSample {
  readyMs: number;
  /** CPU the server used until ready: the work, without the waits of a busy machine. */
  cpuToReadyMs: number;
  idleRssMb: number;
}

async function waitReady(child: Child, url: string, startedAt: number): Promise<number> {
  while (performance.now() - startedAt < READY_DEADLINE_MS) {
    if (child.process.exitCode !== null)
      throw new Error(`serve exited (${child.process.exitCode}): ${child.output()}`);
    if ((await statusOf(url, 1_000)) === 200) return performance.now() - startedAt;
    await delay(POLL_INTERVAL_MS);
  }
  throw new Error(`serve not ready within ${READY_DEADLINE_MS} ms: ${child.output()}`);
}

/** A `switchyard serve` child that has answered its first /readyz with 200. */
export interface RunningServer {
  child: Child;
  pid: number;
  /** `http://127.0.0.1:<port>` of its API (probes only in the worker role). */
  apiUrl: string;
  /** From spawn to the first /readyz 200. */
  readyMs: number;
}

/**
 * Starts `node bin/switchyard.js serve` in `role` on the environment's state and waits until
 * it is ready; stops it again if it never gets there. `env` adds or overrides variables.
 */
export async function startServer(
  environment: BenchEnvironment,
  role: Role,
  options: { env?: Record<string, string>; discardStdout?: boolean } = {},
): Promise<RunningServer> {
  const apiPort = await freePort();
  const env = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '',
    ...environment.env,
    SWITCHYARD_ROLE: role,
    SWITCHYARD_PORT: String(apiPort),
    SWITCHYARD_ROUTER_PORT: String(await freePort()),
    ...options.env,
  };
  const startedAt = performance.now();
  const spawnOptions = { env, cwd: REPO_ROOT };
  const child = startChild(process.execPath, [BIN, 'serve'], spawnOptions, options.discardStdout);
  try {
    const pid = child.process.pid;
    if (pid === undefined) throw new Error('serve has no pid');
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const readyMs = await waitReady(child, `${apiUrl}/readyz`, startedAt);
    return { child, pid, apiUrl, readyMs };
  } catch (error) {
    await child.stop(30_000);
    throw error;
  }
}

/** One start: spawn to /readyz 200, then RSS once idle, then a clean stop. */
async function startOnce(environment: BenchEnvironment, role: Role): Promise<StartSample> {
  const server = await startServer(environment, role);
  try {
    const cpuToReadyMs = cpuMicrosOf(server.pid) / 1000;
    await delay(IDLE_SETTLE_MS);
    return { readyMs: server.readyMs, cpuToReadyMs, idleRssMb: rssMb(server.pid) };
  } finally {
    await server.child.stop(30_000);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Throws when dist/ is missing; returns a warning when src/ changed after the last build. */
export function checkBuild(): string | undefined {
  const main = `${REPO_ROOT}dist/cli/main.js`;
  if (!existsSync(main))
    throw new Error('dist/ is missing: run `npm run build` before `npm run bench`');
  // tsc builds incrementally and rewrites only outputs that change: its build info says when
  // dist/ was last brought up to date.
  const info = `${REPO_ROOT}dist/.tsbuildinfo`;
  const builtAt = statSync(existsSync(info) ? info : main).mtimeMs;
  const sources = readdirSync(`${REPO_ROOT}src`, { recursive: true, encoding: 'utf8' }).filter(
    (path) => path.endsWith('.ts') && !path.endsWith('.test.ts'),
  );
  const newer = sources.filter((path) => statSync(`${REPO_ROOT}src/${path}`).mtimeMs > builtAt);
  if (newer.length === 0) return undefined;
  return `dist/ is older than ${newer.length} file(s) of src/ (e.g. src/${newer[0] ?? ''}); the start-up figures use the older build`;
}

/** What `SWITCHYARD_ROLE` selects: API, workers and router (the default), API only, workers only. */
export type Role = 'all' | 'api' | 'worker';
export const ROLES: readonly Role[] = ['all', 'api', 'worker'];

export function modeOf(environment: BenchEnvironment): string {
  return environment.backend === 'pglite' ? 'embedded (PGlite)' : 'PostgreSQL';
}

/**
 * Part 4 on one backend's already-initialised state, for each process role: one unmeasured
 * start (it may still create the job queue's schema), then `settings.startups` measured ones.
 */
export async function benchStartup(
  environment: BenchEnvironment,
  context: BenchContext,
): Promise<void> {
  for (const role of ROLES) await benchStartupOf(environment, role, context);
}

async function benchStartupOf(
  environment: BenchEnvironment,
  role: Role,
  context: BenchContext,
): Promise<void> {
  const { settings, report } = context;
  const mode = `${modeOf(environment)}, role ${role}`;
  await startOnce(environment, role);
  const samples: StartSample[] = [];
  for (let i = 0; i < settings.startups; i++) samples.push(await startOnce(environment, role));

  const readyMs = median(samples.map((sample) => sample.readyMs));
  const runs = samples.map((sample) => sample.readyMs.toFixed(0)).join(', ');
  report.addCheck({
    name: `warm start to ready, ${mode}`,
    target: `< ${(WARM_START_TARGET_MS / 1000).toFixed(2)} s`,
    measured: `${(readyMs / 1000).toFixed(2)} s (median of ${runs} ms)`,
    isMet: readyMs < WARM_START_TARGET_MS,
  });
  report.addCheck({
    name: `CPU time to ready, ${mode}`,
    target: '-',
    measured: `${(median(samples.map((sample) => sample.cpuToReadyMs)) / 1000).toFixed(2)} s`,
    isMet: undefined,
  });
  report.addCheck({
    name: `idle RSS after start, ${mode}`,
    target: '-',
    measured: `${median(samples.map((sample) => sample.idleRssMb)).toFixed(0)} MB`,
    isMet: undefined,
  });
}
