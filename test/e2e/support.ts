import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { withBuildLock } from './build-lock.js';

/** The repository root: test/e2e/ is two folders below it. */
export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/**
 * Runs `npm run build` unless every compiled file in dist/ is at least as new as its
 * source, so a fresh checkout and an edited tree both test what they contain.
 */
export function ensureBuilt(): void {
  withBuildLock(REPO_ROOT, () => {
    if (!isDistStale(join(REPO_ROOT, 'src'), join(REPO_ROOT, 'dist'))) return;
    const result = spawnSync('npm', ['run', 'build', '--silent'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    if (result.status !== 0) {
      throw new Error(
        `npm run build failed (exit ${result.status}):\n${result.stdout}${result.stderr}`,
      );
    }
  });
}

function isDistStale(srcDir: string, distDir: string): boolean {
  for (const name of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    const isCompiled = name.endsWith('.ts') && !name.endsWith('.test.ts');
    if (!isCompiled || name.split(sep).includes('test-support')) continue;
    const output = join(distDir, name.replace(/\.ts$/, '.js'));
    if (!existsSync(output)) return true;
    if (statSync(output).mtimeMs < statSync(join(srcDir, name)).mtimeMs) return true;
  }
  return false;
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel picked it for port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; detail?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
  const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(
    `timed out after ${options.timeoutMs} ms waiting for ${what}${cause}${options.detail?.() ?? ''}`,
  );
}

/** Polls `condition` until it holds, or throws at the deadline. */
export async function waitUntil(
  what: string,
  condition: () => Promise<boolean> | boolean,
  options: { timeoutMs: number; intervalMs?: number; detail?: () => string },
): Promise<void> {
  await waitFor(what, async () => ((await condition()) ? true : undefined), options);
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  text: string;
}

/** A small JSON client for the Switchyard API; `token` is sent as a bearer when set. */
export class ApiClient {
  token: string | undefined;

  constructor(readonly baseUrl: string) {}

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    const parsed: unknown = text === '' ? undefined : JSON.parse(text);
    return { status: response.status, body: parsed as T, text };
  }

  /** Like `request`, but throws (with the body) unless the status is the expected one. */
  async expect<T = Record<string, unknown>>(
    status: number,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<T> {
    const response = await this.request<T>(method, path, body);
    if (response.status !== status) {
      throw new Error(
        `${method} ${path} answered ${response.status}, expected ${status}: ${response.text}`,
      );
    }
    return response.body;
  }
}

export interface SwitchyardProcess {
  child: ChildProcess;
  apiPort: number;
  routerPort: number;
  api: ApiClient;
  /** Every JSON log line the server printed so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** The last lines the server printed, for failure messages. */
  tail(lines?: number): string;
}

export interface StartOptions {
  dataDir: string;
  apiPort: number;
  routerPort: number;
  env?: Record<string, string>;
}

/**
 * Lets other users pass through (not list) the test's folders above the data folder, as they
 * can through /var/lib: run as root, Switchyard starts builds and apps as users of their own,
 * which must reach the artifacts inside it, and refuses to start when they cannot.
 */
export function openPathToDataDir(dataDir: string): void {
  const top = realpathSync(tmpdir());
  for (let dir = dirname(dataDir); dir.startsWith(`${top}${sep}`); dir = dirname(dir)) {
    chmodSync(dir, 0o711);
  }
}

/** Starts `node bin/switchyard.js serve` and resolves once /readyz answers 200. */
export async function startSwitchyard(options: StartOptions): Promise<SwitchyardProcess> {
  openPathToDataDir(options.dataDir);
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'switchyard.js'), 'serve'], {
    cwd: REPO_ROOT,
    env: serverEnv(options),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const raw: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  collectLines(child, raw, logs);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });

  const server: SwitchyardProcess = {
    child,
    apiPort: options.apiPort,
    routerPort: options.routerPort,
    api: new ApiClient(`http://127.0.0.1:${options.apiPort}`),
    logs,
    exited,
    tail: (lines = 30) => raw.slice(-lines).join('\n'),
  };
  try {
    await waitForReady(server);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  return server;
}

function serverEnv(options: StartOptions): Record<string, string> {
  // Only what the server needs: a DATABASE_URL or REDIS_URL in the test's own environment
  // must not switch it out of embedded mode.
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }
  return {
    ...inherited,
    SWITCHYARD_DATA_DIR: options.dataDir,
    SWITCHYARD_PORT: String(options.apiPort),
    SWITCHYARD_ROUTER_PORT: String(options.routerPort),
    LOG_LEVEL: 'info',
    ...options.env,
  };
}

function collectLines(
  child: ChildProcess,
  raw: string[],
  logs: Array<Record<string, unknown>>,
): void {
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        raw.push(line);
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a log line (e.g. a crash trace on stderr); kept in `raw` for the tail.
        }
      }
    });
  }
}

async function waitForReady(server: SwitchyardProcess): Promise<void> {
  let exitedWith: number | string | undefined;
  // A server that exits (bad configuration) fails the wait at once, not at its deadline.
  const exitedEarly = server.exited.then((code) => {
    exitedWith = code;
    throw new Error(`switchyard exited with ${code}\n${server.tail()}`);
  });
  exitedEarly.catch(() => undefined);
  const ready = waitFor(
    'switchyard /readyz',
    async () => {
      if (exitedWith !== undefined) return true;
      const response = await fetch(`${server.api.baseUrl}/readyz`, {
        signal: AbortSignal.timeout(2_000),
      });
      await response.arrayBuffer();
      return response.status === 200 ? true : undefined;
    },
    // A fresh data folder starts with initdb, which takes over 10 s on a busy machine.
    { timeoutMs: 60_000, intervalMs: 200, detail: () => `\n${server.tail()}` },
  );
  await Promise.race([ready, exitedEarly]);
}

/** Sends SIGTERM, then SIGKILL if the process has not ended within `graceMs`. */
export async function stopSwitchyard(
  server: SwitchyardProcess,
  graceMs = 20_000,
): Promise<number | string> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), graceMs);
  try {
    return await server.exited;
  } finally {
    clearTimeout(timer);
  }
}

export interface RouterAnswer {
  status: number;
  body: Buffer;
}

/** GET through the router on 127.0.0.1 with the given Host header (no DNS involved). */
export function routerGet(
  port: number,
  host: string,
  path: string,
  agent?: Agent | false,
): Promise<RouterAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host }, agent, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('router request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** True when nothing accepts TCP connections on 127.0.0.1:port. */
export function isPortClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 2_000 });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** SIGKILLs every process working inside `dir`: instances a killed server left behind. */
export function killProcessesUnder(dir: string): void {
  for (const pid of processesWithCwdUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // It exited between the listing and the kill.
    }
  }
}

/** Ids of live processes whose working directory lies inside `dir` (read from /proc). */
export function processesWithCwdUnder(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${entry}/cwd`);
    } catch {
      continue; // gone already, or not ours to read
    }
    const inside = relative(dir, cwd);
    if (inside === '' || (!inside.startsWith('..') && !inside.startsWith(sep)))
      found.push(Number(entry));
  }
  return found;
}

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Switchyard E2E',
  GIT_AUTHOR_EMAIL: 'e2e@example.com',
  GIT_COMMITTER_NAME: 'Switchyard E2E',
  GIT_COMMITTER_EMAIL: 'e2e@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
};

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'commit.gpgsign=false', ...args], {
    cwd: dir,
    env: GIT_ENV,
    encoding: 'utf8',
  });
}

/** Copies `source` into `dir`, makes it a git repository on `main`, commits everything. */
export function createGitRepo(source: string, dir: string): void {
  cpSync(source, dir, { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  commitAll(dir, 'initial commit');
}

/** Commits every change in the repository; returns the new commit's sha. */
export function commitAll(dir: string, message: string): string {
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD').trim();
}

export interface ServerSentEvent {
  event: string;
  data: string;
}

/** Reads a server-sent event stream until an event named `until` arrives or the deadline. */
export async function readEventStream(
  url: string,
  token: string,
  until: string,
  timeoutMs: number,
): Promise<ServerSentEvent[]> {
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200 || response.body === null) {
    throw new Error(`event stream answered ${response.status}: ${await response.text()}`);
  }
  const events: ServerSentEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const event = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event === undefined) continue;
      events.push(event);
      if (event.event === until) return events;
    }
  }
  return events;
}

function parseFrame(frame: string): ServerSentEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  return data.length === 0 ? undefined : { event, data: data.join('\n') };
}

export interface TrafficSample {
  loop: number;
  startedAt: number;
  endedAt: number;
  /** What `classify` made of a 200 answer; undefined for failures. */
  answer?: string;
  failure?: string;
}

export interface Traffic {
  samples: TrafficSample[];
  /** Stops every loop after its current request and returns all samples. */
  stop(): Promise<TrafficSample[]>;
}

/**
 * Sends GET requests through the router without pause: loop 0 on one keep-alive
 * connection, the others concurrently (even loops keep-alive, odd loops a new connection
 * per request). A non-200 answer, a network error or an unrecognized body is a failure.
 */
export function startTraffic(
  port: number,
  host: string,
  loops: number,
  classify: (body: Buffer) => string | undefined,
): Traffic {
  const samples: TrafficSample[] = [];
  let isStopping = false;

  const runLoop = async (loop: number) => {
    const agent = loop % 2 === 0 ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    try {
      while (!isStopping) {
        const startedAt = performance.now();
        try {
          const answer = await routerGet(port, host, '/', agent);
          const label = answer.status === 200 ? classify(answer.body) : undefined;
          const failure =
            label === undefined
              ? `${answer.status} ${answer.body.toString('utf8').slice(0, 200)}`
              : undefined;
          samples.push({ loop, startedAt, endedAt: performance.now(), answer: label, failure });
        } catch (error) {
          samples.push({ loop, startedAt, endedAt: performance.now(), failure: String(error) });
        }
      }
    } finally {
      if (agent !== false) agent.destroy();
    }
  };

  const running = Array.from({ length: loops }, (_, loop) => runLoop(loop));
  return {
    samples,
    async stop() {
      isStopping = true;
      await Promise.all(running);
      return samples;
    },
  };
}
