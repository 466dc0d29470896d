import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';

import type { WorkloadSpec } from '../../runtime.js';

/**
 * One small HTTP app whose behaviour APP_MODE picks: `healthy` (default), `failing`
 * (answers its health check with 500), `silent` (never listens) or `crash` (exits at once).
 * Other paths: /env, /toggle (flips health), /crash, /slow?ms=, /log?line=, / (echo).
 */
const APP_SOURCE = String.raw`
const http = require('node:http');
const mode = process.env.APP_MODE || 'healthy';
console.error('booting in ' + mode + ' mode');
if (mode === 'crash') {
  console.error('boom: crashing on purpose');
  setTimeout(() => process.exit(3), 20);
} else if (mode === 'silent') {
  setInterval(() => {}, 1000);
} else {
  let healthy = mode !== 'failing';
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://app');
    if (url.pathname === '/healthz') {
      res.writeHead(healthy ? 200 : 500);
      return res.end(healthy ? 'ok' : 'sick');
    }
    if (url.pathname === '/env') return json(res, process.env);
    if (url.pathname === '/toggle') {
      healthy = !healthy;
      return res.end(String(healthy));
    }
    if (url.pathname === '/crash') {
      res.end('bye');
      return setTimeout(() => process.exit(7), 10);
    }
    if (url.pathname === '/slow') {
      return setTimeout(() => res.end('slow done'), Number(url.searchParams.get('ms') || 500));
    }
    if (url.pathname === '/log') {
      console.log(url.searchParams.get('line'));
      return res.end('logged');
    }
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => json(res, { port: process.env.PORT, method: req.method, url: req.url, headers: req.headers, body }));
  });
  server.listen(Number(process.env.PORT), process.env.HOST, () => console.log('listening on ' + process.env.PORT));
  process.on('SIGTERM', () => {
    if (process.env.IGNORE_SIGTERM === '1') return console.log('ignoring SIGTERM');
    console.log('draining');
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}
function json(res, value) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(value));
}
`;

export interface TestBench {
  dir: string;
  stateDir: string;
  appDir: string;
  logger: Logger;
  spec(overrides?: Partial<WorkloadSpec> & { mode?: string }): WorkloadSpec;
  cleanup(): Promise<void>;
}

let benches = 0;

export async function createTestBench(): Promise<TestBench> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'switchyard-runtime-'));
  const prefix = `dep-${process.pid}-${++benches}-`;
  let sequence = 0;
  const appDir = path.join(dir, 'app');
  const stateDir = path.join(dir, 'state');
  await fs.mkdir(appDir);
  await fs.writeFile(path.join(appDir, 'app.cjs'), APP_SOURCE);

  return {
    dir,
    stateDir,
    appDir,
    logger: pino({ level: 'silent' }),
    spec: ({ mode, ...overrides } = {}) => ({
      deploymentId: `${prefix}${++sequence}`,
      releaseId: 'rel-1',
      labels: { project: 'shop', environment: 'staging', service: 'web' },
      artifactPath: appDir,
      start: { command: process.execPath, args: ['app.cjs'] },
      instances: 1,
      healthCheckPath: '/healthz',
      ...overrides,
      env: { APP_MODE: mode ?? 'healthy', ...overrides.env },
    }),
    cleanup: async () => {
      // A failed test may have left workloads running; they must not outlive the test run.
      for (const pid of await markedProcesses(prefix)) process.kill(pid, 'SIGKILL');
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `predicate` until it holds; throws with `what` when `timeoutMs` pass first. */
export async function waitFor(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function httpRequest(
  port: number,
  options: { path?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of live processes whose SWITCHYARD_INSTANCE_ID starts with `prefix`. */
export async function markedProcesses(prefix: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const isZombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    const hasMarker = environ
      .split('\0')
      .some((v) => v.startsWith(`SWITCHYARD_INSTANCE_ID=${prefix}`));
    if (hasMarker && !isZombie) found.push(pid);
  }
  return found;
}
