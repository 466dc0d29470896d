import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SYSTEM_PATH } from './build-process.js';
import { STATIC_SERVER_PATH, STATIC_SERVER_SOURCE } from './static-server.js';
import { makeTempDir, waitFor } from './test-support/git-repos.js';

let artifact: string;
let server: ChildProcess;
let port: number;

before(async () => {
  artifact = await makeTempDir('static-server');
  await mkdir(join(artifact, '.switchyard'));
  await mkdir(join(artifact, 'public/docs'), { recursive: true });
  await writeFile(join(artifact, STATIC_SERVER_PATH), STATIC_SERVER_SOURCE);
  await writeFile(join(artifact, 'secret.txt'), 'TOP-SECRET outside the site');
  await writeFile(join(artifact, 'public/index.html'), '<h1>home</h1>');
  await writeFile(join(artifact, 'public/style.css'), 'body {}');
  await writeFile(join(artifact, 'public/app.js'), 'console.log(1)');
  await writeFile(join(artifact, 'public/docs/index.html'), '<h1>docs</h1>');
  await writeFile(join(artifact, 'public/.env'), 'TOP-SECRET in a dotfile');
  await symlink('../secret.txt', join(artifact, 'public/escape.txt'));

  server = startServer('public');
  let output = '';
  server.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await waitFor(() => /listening on 127\.0\.0\.1:\d+/.test(output), 10_000);
  port = Number(/:(\d+)/.exec(output)?.[1]);
});

after(async () => {
  server.kill('SIGKILL');
  await rm(artifact, { recursive: true, force: true });
});

function startServer(site: string): ChildProcess {
  return spawn(process.execPath, [STATIC_SERVER_PATH, site], {
    cwd: artifact,
    env: { PATH: SYSTEM_PATH, PORT: '0' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/** A raw request: unlike fetch, the path is sent exactly as written. */
function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject).end();
  });
}

test('serves index.html with its content type, and folders through their index.html', async () => {
  assert.deepEqual(await get('/'), {
    status: 200,
    type: 'text/html; charset=utf-8',
    body: '<h1>home</h1>',
  });
  assert.equal((await get('/docs/')).body, '<h1>docs</h1>');
  assert.equal((await get('/style.css')).type, 'text/css; charset=utf-8');
  assert.equal((await get('/app.js')).type, 'text/javascript; charset=utf-8');
});

test('answers /healthz with 200, HEAD without a body, other methods with 405', async () => {
  assert.equal((await get('/healthz')).status, 200);
  assert.deepEqual(await get('/', 'HEAD'), {
    status: 200,
    type: 'text/html; charset=utf-8',
    body: '',
  });
  assert.equal((await get('/', 'POST')).status, 405);
  assert.equal((await get('/missing.html')).status, 404);
});

test('never serves files outside the site folder or dot-files', async () => {
  const attempts = [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/docs/..%2f..%2fsecret.txt',
    '/escape.txt',
    '/.env',
    '/%2eenv',
    '/../.switchyard/static-server.mjs',
    '/index.html%00.css',
    '/%E0%A4%A',
  ];
  for (const path of attempts) {
    const response = await get(path);
    assert.ok(response.status >= 400, `${path} answered ${response.status}`);
    assert.ok(!response.body.includes('TOP-SECRET'), path);
    assert.ok(!response.body.includes('root:'), path);
  }
});

test('refuses to start with a site folder outside the artifact', async () => {
  const outside = startServer('..');
  const [code] = await once(outside, 'exit');
  assert.equal(code, 1);
});

test('exits cleanly on SIGTERM', async () => {
  const other = startServer('public');
  await once(other.stdout ?? other, 'data');
  other.kill('SIGTERM');
  const [code] = await once(other, 'exit');
  assert.equal(code, 0);
});
