import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, lstat, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { encodeManifest, readTreeManifest } from './artifact.js';
import { SYSTEM_PATH } from './build-process.js';
import {
  BuildFailedError,
  runLocalBuild,
  type BuildInput,
  type BuildResult,
} from './local-builder.js';
import {
  createRepo,
  isProcessAlive,
  makeTempDir,
  waitFor,
  type FixtureRepo,
} from './test-support/git-repos.js';

let root: string;
let nodeRepo: FixtureRepo;
const started: ChildProcess[] = [];

const LOCKFILE = JSON.stringify({
  name: 'hello',
  version: '1.0.0',
  lockfileVersion: 3,
  requires: true,
  packages: { '': { name: 'hello', version: '1.0.0' } },
});

function nodeApp(scripts: Record<string, string>, extra: Record<string, string> = {}) {
  return {
    'package.json': JSON.stringify({ name: 'hello', version: '1.0.0', scripts }),
    'package-lock.json': LOCKFILE,
    ...extra,
  };
}

const SERVER_JS = `
const http = require('http');
const fs = require('fs');
const server = http.createServer((req, res) => res.end(fs.readFileSync('dist/message.txt')));
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening ' + server.address().port));
`;
const BUILD_JS = `
require('fs').mkdirSync('dist', { recursive: true });
require('fs').writeFileSync('dist/message.txt', 'made by the build script');
console.log('build script ran');
`;

before(async () => {
  root = await makeTempDir('local-builder');
  nodeRepo = await createRepo(
    root,
    nodeApp(
      { build: 'node build.js', start: 'node server.js' },
      { 'build.js': BUILD_JS, 'server.js': SERVER_JS },
    ),
  );
});

after(async () => {
  // The start command is a shell; its server is a child in the same process group.
  for (const child of started) if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  await rm(root, { recursive: true, force: true });
});

function buildInput(gitUrl: string, overrides: Partial<BuildInput> = {}) {
  const lines: string[] = [];
  const input: BuildInput = {
    buildId: 'build-test',
    gitUrl,
    ref: 'main',
    workRoot: join(root, 'work'),
    artifactRoot: join(root, 'artifacts'),
    // Offline: the fixtures have no dependencies, and tests must not reach a registry.
    buildEnv: { npm_config_offline: 'true' },
    secretValues: [],
    timeoutMs: 30_000,
    signal: new AbortController().signal,
    onLog: (line) => lines.push(line),
    logger: pino({ level: 'silent' }),
    ...overrides,
  };
  return { input, lines };
}

async function expectFailure(input: BuildInput, reason: BuildFailedError['reason']) {
  const error = await runLocalBuild(input).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof BuildFailedError, `expected a BuildFailedError, got ${String(error)}`);
  assert.equal(error.reason, reason, error.message);
  return error;
}

async function assertScratchRemoved() {
  assert.deepEqual(await readdir(join(root, 'work')), []);
}

/** Starts an artifact the way the local runtime does and returns the port it printed. */
async function startArtifact(result: BuildResult, pattern: RegExp): Promise<number> {
  const child = spawn(result.start.command, result.start.args, {
    cwd: result.artifactPath,
    env: { PATH: SYSTEM_PATH, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  started.push(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await waitFor(() => pattern.test(output), 10_000);
  return Number(pattern.exec(output)?.[1]);
}

describe('node apps', () => {
  test('installs with npm ci, runs the build script and stores a runnable artifact', async () => {
    const { input, lines } = buildInput(nodeRepo.path);
    const result = await runLocalBuild(input);

    assert.equal(result.kind, 'node');
    assert.equal(result.commitSha, await nodeRepo.git('rev-parse', 'HEAD'));
    assert.match(result.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(
      result.artifactPath,
      join(root, 'artifacts', result.digest.slice('sha256:'.length)),
    );
    assert.ok(lines.includes('-----> Running npm ci --no-audit --no-fund'));
    assert.ok(lines.includes('build script ran'));
    assert.equal(
      await readFile(join(result.artifactPath, 'dist/message.txt'), 'utf8'),
      'made by the build script',
    );
    await assert.rejects(access(join(result.artifactPath, '.git')));
    assert.ok(result.sizeBytes > 0);
    await assertScratchRemoved();

    assert.equal(result.start.command, '/bin/sh');
    assert.match(result.start.args.join(' '), /^-c .*node_modules\/\.bin.*node server\.js$/);
    const port = await startArtifact(result, /listening (\d+)/);
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await response.text(), 'made by the build script');
  });

  test('building the same commit twice gives the same digest and reuses the folder', async () => {
    const first = await runLocalBuild(buildInput(nodeRepo.path).input);
    const { input, lines } = buildInput(nodeRepo.path, { buildId: 'second' });
    const second = await runLocalBuild(input);

    assert.equal(second.digest, first.digest);
    assert.equal(second.artifactPath, first.artifactPath);
    assert.ok(lines.includes(`-----> Reused artifact ${first.digest}`));
    const manifest = await readFile(join(first.artifactPath, '.switchyard/manifest.json'));
    assert.equal(`sha256:${createHash('sha256').update(manifest).digest('hex')}`, first.digest);
    const stored = await readTreeManifest(first.artifactPath, new AbortController().signal);
    assert.equal(`sha256:${encodeManifest(stored).hex}`, first.digest);
  });

  test('without a lockfile installs with npm install and starts the main file', async () => {
    const repo = await createRepo(root, {
      'package.json': JSON.stringify({ name: 'plain', version: '1.0.0', main: 'app/main.js' }),
      'app/main.js': 'console.log("hi")',
    });
    const { input, lines } = buildInput(repo.path);
    const result = await runLocalBuild(input);

    assert.ok(lines.includes('-----> Running npm install --no-audit --no-fund'));
    assert.deepEqual(result.start, { command: 'node', args: ['./app/main.js'] });
  });

  test('a failing build script fails with build_failed and its output captured', async () => {
    const repo = await createRepo(
      root,
      nodeApp({ build: 'echo compiling; echo "app.js: syntax error" >&2; exit 3' }),
    );
    const { input, lines } = buildInput(repo.path);
    const error = await expectFailure(input, 'build_failed');

    assert.match(error.message, /npm run build failed/);
    assert.ok(lines.includes('compiling'));
    assert.ok(lines.includes('app.js: syntax error'));
    await assertScratchRemoved();
  });

  test('build steps see the build variables with secrets redacted, never the parent environment', async () => {
    process.env['SWITCHYARD_TEST_PARENT_ONLY'] = 'parent-value';
    const secret = 's3cr3t-token-value';
    // Writes the secret in two chunks with a pause, so it crosses a pipe read boundary.
    const split = `process.stdout.write('split ${secret.slice(0, 6)}'); setTimeout(() => process.stdout.write('${secret.slice(6)} end\\n'), 100);`;
    const repo = await createRepo(
      root,
      nodeApp(
        {
          build:
            'echo "token=$API_TOKEN"; echo "parent=[$SWITCHYARD_TEST_PARENT_ONLY]"; node split.js',
        },
        { 'split.js': split, 'index.js': '' },
      ),
    );
    const { input, lines } = buildInput(repo.path, {
      buildEnv: { API_TOKEN: secret, npm_config_offline: 'true' },
      secretValues: [secret],
    });
    await runLocalBuild(input);
    delete process.env['SWITCHYARD_TEST_PARENT_ONLY'];

    assert.ok(lines.includes('token=[REDACTED]'));
    assert.ok(lines.includes('split [REDACTED] end'));
    assert.ok(lines.includes('parent=[]'));
    assert.ok(lines.every((line) => !line.includes(secret) && !line.includes('s3cr3t-')));
  });

  test('a build running past its timeout fails with timeout and its whole process group is killed', async () => {
    const pidFile = join(root, 'timeout.pid');
    const repo = await createRepo(
      root,
      nodeApp({ build: 'sleep 60 & echo $! > "$PID_FILE"; wait' }),
    );
    const { input } = buildInput(repo.path, {
      timeoutMs: 6_000,
      buildEnv: { PID_FILE: pidFile, npm_config_offline: 'true' },
    });
    const startedAt = Date.now();
    await expectFailure(input, 'timeout');

    assert.ok(Date.now() - startedAt < 15_000);
    const pid = Number(await readFile(pidFile, 'utf8'));
    await waitFor(async () => !(await isProcessAlive(pid)), 5_000);
    await assertScratchRemoved();
  });

  test('aborting the signal cancels the build and kills its processes', async () => {
    const pidFile = join(root, 'cancel.pid');
    const repo = await createRepo(
      root,
      nodeApp({ build: 'sleep 60 & echo $! > "$PID_FILE"; echo waiting-for-cancel; wait' }),
    );
    const controller = new AbortController();
    const { input } = buildInput(repo.path, {
      signal: controller.signal,
      buildEnv: { PID_FILE: pidFile, npm_config_offline: 'true' },
      onLog: (line) => line === 'waiting-for-cancel' && controller.abort(),
    });
    await expectFailure(input, 'cancelled');

    const pid = Number(await readFile(pidFile, 'utf8'));
    await waitFor(async () => !(await isProcessAlive(pid)), 5_000);
    await assertScratchRemoved();
  });
});

describe('procfile and static apps', () => {
  test('a Procfile app starts its web line through /bin/sh, keeping exec bits and symlinks', async () => {
    const repo = await createRepo(root, {
      Procfile: 'worker: ./bin/work\nweb: ./bin/serve --port "$PORT"\n',
      'bin/serve': { content: '#!/bin/sh\necho serving\n', executable: true },
      'bin/notes.txt': 'plain',
      current: { symlinkTo: 'bin/serve' },
    });
    const result = await runLocalBuild(buildInput(repo.path).input);

    assert.equal(result.kind, 'procfile');
    assert.deepEqual(result.start, {
      command: '/bin/sh',
      args: ['-c', './bin/serve --port "$PORT"'],
    });
    assert.equal((await lstat(join(result.artifactPath, 'bin/serve'))).mode & 0o777, 0o755);
    assert.equal((await lstat(join(result.artifactPath, 'bin/notes.txt'))).mode & 0o777, 0o644);
    assert.equal(await readlink(join(result.artifactPath, 'current')), 'bin/serve');
  });

  test('a static site gets a self-contained file server in the artifact', async () => {
    const repo = await createRepo(root, {
      'public/index.html': '<h1>static</h1>',
      'README.md': 'docs',
    });
    const result = await runLocalBuild(buildInput(repo.path).input);

    assert.equal(result.kind, 'static');
    assert.deepEqual(result.start, {
      command: 'node',
      args: ['.switchyard/static-server.mjs', 'public'],
    });
    const port = await startArtifact(result, /listening on [\d.]+:(\d+)/);
    const response = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(await response.text(), '<h1>static</h1>');
  });

  test('a tree with no buildpack fails with no_buildpack and says what is missing', async () => {
    const repo = await createRepo(root, { 'README.md': 'only docs' });
    const error = await expectFailure(buildInput(repo.path).input, 'no_buildpack');
    assert.match(error.message, /package\.json.*Procfile.*index\.html/);
  });
});

describe('refs', () => {
  let repo: FixtureRepo;
  const shas: Record<string, string> = {};

  before(async () => {
    repo = await createRepo(root, { Procfile: 'web: echo one' });
    shas['one'] = await repo.git('rev-parse', 'HEAD');
    await repo.git('tag', '--annotate', 'v1.0.0', '--message', 'release one');
    shas['two'] = await repo.commit({ Procfile: 'web: echo two' });
    await repo.git('branch', 'feature');
    await repo.git('tag', 'light');
    shas['three'] = await repo.commit({ Procfile: 'web: echo three' });
  });

  const cases: Array<[string, (shas: Record<string, string>) => string, string]> = [
    ['main', () => 'main', 'three'],
    ['HEAD', () => 'HEAD', 'three'],
    ['a branch', () => 'feature', 'two'],
    ['an annotated tag', () => 'v1.0.0', 'one'],
    ['a lightweight tag', () => 'light', 'two'],
    ['a full ref name', () => 'refs/tags/v1.0.0', 'one'],
    ['a full sha', (all) => all['one'] ?? '', 'one'],
    ['a short sha', (all) => (all['one'] ?? '').slice(0, 8), 'one'],
  ];
  for (const [name, ref, expected] of cases) {
    test(`resolves ${name} to its full commit sha`, async () => {
      const result = await runLocalBuild(buildInput(repo.path, { ref: ref(shas) }).input);
      assert.equal(result.commitSha, shas[expected]);
      assert.deepEqual(result.start.args, ['-c', `echo ${expected}`]);
    });
  }

  test('a ref that names nothing fails with ref_not_found', async () => {
    await expectFailure(buildInput(repo.path, { ref: 'no-such-branch' }).input, 'ref_not_found');
    await expectFailure(buildInput(repo.path, { ref: 'deadbeef' }).input, 'ref_not_found');
    await assertScratchRemoved();
  });

  test('refs and URLs that git could read as options are refused before they reach git', async () => {
    const marker = join(root, 'pwned');
    for (const ref of [`--upload-pack=touch ${marker}`, '-c', '+refs/heads/main:refs/heads/x']) {
      await expectFailure(buildInput(repo.path, { ref }).input, 'ref_not_found');
    }
    await expectFailure(buildInput(`--upload-pack=touch ${marker}`).input, 'clone_failed');
    await assert.rejects(access(marker));
  });

  test('a repository that does not exist fails with clone_failed', async () => {
    await expectFailure(buildInput(join(root, 'missing-repo')).input, 'clone_failed');
  });
});
