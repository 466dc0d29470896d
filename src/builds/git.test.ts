import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BuildFailedError } from './build-error.js';
import { SYSTEM_PATH } from './build-process.js';
import { assertSafeRef, checkoutRef, credentialSecrets, gitEnvironment } from './git.js';
import { createRedactor } from './log-redaction.js';
import { createRepo, makeTempDir, type FixtureRepo } from './test-support/git-repos.js';

const CREDENTIALS = { username: 'deploy-bot', password: 'pa55-word-never-shown' };
const EXPECTED_AUTH = `Basic ${Buffer.from('deploy-bot:pa55-word-never-shown').toString('base64')}`;

describe('assertSafeRef', () => {
  for (const ref of [
    'main',
    'feature/login',
    'v1.2.3',
    'release-2024+hotfix',
    'HEAD',
    'refs/tags/v1',
    'a1b2c3d',
  ]) {
    test(`accepts ${ref}`, () => assertSafeRef(ref));
  }
  const refused = [
    '--upload-pack=evil',
    '-c',
    '+main',
    'a:b',
    'a..b',
    'a b',
    '/main',
    'main/',
    'x.lock',
    'a/.b',
    '@',
    'a@{1}',
    'a\nb',
    '',
  ];
  for (const ref of refused) {
    test(`refuses ${JSON.stringify(ref)}`, () => {
      assert.throws(
        () => assertSafeRef(ref),
        (error: unknown) => error instanceof BuildFailedError && error.reason === 'ref_not_found',
      );
    });
  }
});

test('credentials travel only in the environment, as a header scoped to the origin', () => {
  const env = gitEnvironment('/home/x', 'https://git.example.test/team/app.git', CREDENTIALS);
  assert.equal(env['GIT_CONFIG_KEY_0'], 'http.https://git.example.test/.extraHeader');
  assert.equal(env['GIT_CONFIG_VALUE_0'], `Authorization: ${EXPECTED_AUTH}`);
  assert.equal(env['GIT_TERMINAL_PROMPT'], '0');
  assert.equal(env['GIT_CONFIG_NOSYSTEM'], '1');
  assert.equal(gitEnvironment('/home/x', '/srv/repo', CREDENTIALS)['GIT_CONFIG_COUNT'], undefined);
  assert.deepEqual(credentialSecrets(CREDENTIALS), [
    CREDENTIALS.password,
    EXPECTED_AUTH.slice('Basic '.length),
  ]);
});

describe('fetching over HTTP with credentials', () => {
  let dir: string;
  let repo: FixtureRepo;
  let server: Server;
  let baseUrl: string;
  const seenAuth: Array<string | undefined> = [];

  before(async () => {
    dir = await makeTempDir('git-http');
    repo = await createRepo(dir, { Procfile: 'web: echo hi' });
    server = createServer((req, res) => serveGit(req, res, dir, seenAuth));
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function checkout(name: string, credentials?: typeof CREDENTIALS) {
    const lines: string[] = [];
    const target = join(dir, name);
    await mkdir(join(target, 'src'), { recursive: true });
    await mkdir(join(target, 'home'));
    const url = `${baseUrl}/${repo.path.slice(dir.length + 1)}`;
    const sha = await checkoutRef({
      url,
      ref: 'main',
      dir: join(target, 'src'),
      home: join(target, 'home'),
      credentials,
      signal: new AbortController().signal,
      redactor: createRedactor(credentialSecrets(credentials)),
      onLog: (line) => lines.push(line),
    });
    return { sha, lines, target };
  }

  test('sends the Authorization header and checks out the commit', async () => {
    const { sha, lines, target } = await checkout('with-credentials', CREDENTIALS);
    assert.equal(sha, await repo.git('rev-parse', 'HEAD'));
    assert.ok(seenAuth.includes(EXPECTED_AUTH));
    assert.ok(lines.every((line) => !line.includes(CREDENTIALS.password)));

    // The clone stores no URL or credential anywhere in its configuration.
    const config = await runGit(['config', '--list', '--local'], join(target, 'src'));
    assert.ok(!config.includes(CREDENTIALS.password) && !config.includes('127.0.0.1'));
  });

  test('fails with clone_failed, without prompting, when the server refuses', async () => {
    await assert.rejects(checkout('without-credentials'), (error: unknown) => {
      return error instanceof BuildFailedError && error.reason === 'clone_failed';
    });
  });
});

/** A tiny git smart-HTTP server: Basic auth in front of `git http-backend` (CGI). */
function serveGit(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  seenAuth: Array<string | undefined>,
) {
  seenAuth.push(req.headers.authorization);
  if (req.headers.authorization !== EXPECTED_AUTH) {
    res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
    return;
  }
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const cgi = spawn('git', ['http-backend'], {
    env: {
      PATH: SYSTEM_PATH,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
    },
  });
  req.pipe(cgi.stdin);

  let head = Buffer.alloc(0);
  let isStreaming = false;
  cgi.stdout.on('data', (chunk: Buffer) => {
    if (isStreaming) return void res.write(chunk);
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) return;
    isStreaming = true;
    const headers: Record<string, string> = {};
    let status = 200;
    for (const line of head.subarray(0, end).toString().split('\r\n')) {
      const [name = '', ...rest] = line.split(':');
      if (name.toLowerCase() === 'status') status = Number.parseInt(rest.join(':').trim(), 10);
      else headers[name] = rest.join(':').trim();
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + 4));
  });
  cgi.stdout.on('end', () => res.end());
}

function runGit(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd,
      env: { PATH: SYSTEM_PATH, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject).on('close', () => resolve(output));
  });
}
