import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';

import type { RuntimeDriver, WorkloadSpec } from '../runtime.js';
import { createLocalRuntime } from './local-runtime.js';
import { httpRequest, isAlive } from './test-support/test-apps.js';

const isRoot = process.getuid?.() === 0;
const UID_A = 200_901;
const UID_B = 200_902;

/** An app that reports who it runs as and what it can read and write, path by path. */
const PROBE_APP = String.raw`
const fs = require('node:fs');
const http = require('node:http');
const attempt = (fn) => { try { fn(); return 'ok'; } catch (error) { return error.code || String(error); } };
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  const target = url.searchParams.get('path') || '';
  let body;
  if (url.pathname === '/healthz') body = 'ok';
  else if (url.pathname === '/whoami') body = JSON.stringify({ uid: process.getuid(), gid: process.getgid(), pid: process.pid });
  else if (url.pathname === '/read') body = attempt(() => fs.readFileSync(target));
  else if (url.pathname === '/list') body = attempt(() => fs.readdirSync(target));
  else if (url.pathname === '/write') body = attempt(() => fs.writeFileSync(target, 'x'));
  else body = 'unknown';
  res.end(body);
}).listen(Number(process.env.PORT), process.env.HOST);
`;

describe('local runtime workload isolation (as root)', { skip: !isRoot && 'needs root' }, () => {
  let dir: string;
  let appDir: string;
  let keysDir: string;
  let runtime: RuntimeDriver;
  let sequence = 0;
  const start = () => ({ deadlineMs: 10_000, signal: new AbortController().signal });

  const spec = (uid: number, env: Record<string, string> = {}): WorkloadSpec => ({
    deploymentId: `iso-${process.pid}-${++sequence}`,
    releaseId: 'rel-1',
    labels: { project: 'shop', environment: 'staging', service: 'web' },
    artifactPath: appDir,
    start: { command: process.execPath, args: ['app.cjs'] },
    env,
    instances: 1,
    healthCheckPath: '/healthz',
    runAs: { uid, gid: uid },
  });
  const ask = async (port: number, route: string, target = '') => {
    const query = target === '' ? '' : `?path=${encodeURIComponent(target)}`;
    return (await httpRequest(port, { path: `${route}${query}` })).body;
  };

  before(async () => {
    // Laid out as the data folder is: passable where workloads go, Switchyard's elsewhere.
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'switchyard-isolation-'));
    await fs.chmod(dir, 0o711);
    appDir = path.join(dir, 'artifact');
    await fs.mkdir(appDir, { mode: 0o755 });
    await fs.writeFile(path.join(appDir, 'app.cjs'), PROBE_APP, { mode: 0o644 });
    keysDir = path.join(dir, 'keys');
    await fs.mkdir(keysDir, { mode: 0o700 });
    await fs.writeFile(path.join(keysDir, 'master.key'), 'not for apps', { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'jwt.pem'), 'not for apps either', { mode: 0o600 });
    runtime = createLocalRuntime({
      stateDir: path.join(dir, 'runtime'),
      logger: pino({ level: 'silent' }),
      healthIntervalMs: 50,
      drainMs: 1_000,
    });
  });

  after(async () => {
    await runtime.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs each instance as its workload user with a HOME only that user owns', async () => {
    const workload = spec(UID_A);
    const [status] = await runtime.start(workload, start());
    const port = status?.port ?? 0;

    const who = JSON.parse(await ask(port, '/whoami')) as { uid: number; gid: number };
    assert.deepEqual([who.uid, who.gid], [UID_A, UID_A]);
    const home = path.join(dir, 'runtime', 'homes', status?.id ?? '');
    const info = await fs.stat(home);
    assert.deepEqual([info.uid, info.mode & 0o777], [UID_A, 0o700]);
    assert.equal(await ask(port, '/write', path.join(home, 'cache')), 'ok');
    await runtime.stop(workload.deploymentId);
    // Removed as its user, so nothing the app left in it can point root's removal elsewhere.
    assert.equal(await fs.stat(home).catch(() => 'gone'), 'gone');
  });

  it("cannot read Switchyard's key files, its environment, or change its own artifact", async () => {
    const [status] = await runtime.start(spec(UID_A), start());
    const port = status?.port ?? 0;

    assert.equal(await ask(port, '/read', path.join(keysDir, 'master.key')), 'EACCES');
    assert.equal(await ask(port, '/read', path.join(dir, 'jwt.pem')), 'EACCES');
    assert.equal(await ask(port, '/list', keysDir), 'EACCES');
    assert.equal(await ask(port, '/read', `/proc/${process.pid}/environ`), 'EACCES');
    assert.equal(await ask(port, '/write', path.join(appDir, 'app.cjs')), 'EACCES');
    assert.equal(await ask(port, '/write', path.join(appDir, 'planted.js')), 'EACCES');
    // The probe itself works: the app can read its own environment.
    assert.equal(await ask(port, '/read', '/proc/self/environ'), 'ok');
  });

  it("cannot read another project's app's environment, and stops across users", async () => {
    const other = spec(UID_B, { SECRET_OF_B: 'b-only-value' });
    const [statusB] = await runtime.start(other, start());
    const [statusA] = await runtime.start(spec(UID_A), start());
    const pidB = statusB?.pid ?? 0;

    assert.equal(await ask(statusA?.port ?? 0, '/read', `/proc/${pidB}/environ`), 'EACCES');
    assert.equal(await ask(statusB?.port ?? 0, '/read', `/proc/${pidB}/environ`), 'ok');
    await runtime.stop(other.deploymentId);
    assert.equal(isAlive(pidB), false);
  });
});
