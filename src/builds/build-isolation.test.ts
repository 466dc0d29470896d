import assert from 'node:assert/strict';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { BuildFailedError, runLocalBuild, type BuildInput } from './local-builder.js';
import { createRepo, makeTempDir, type FixtureRepo } from './test-support/git-repos.js';

const isRoot = process.getuid?.() === 0;
const UID = 200_911;

const LOCKFILE = JSON.stringify({
  name: 'probe',
  version: '1.0.0',
  lockfileVersion: 3,
  requires: true,
  packages: { '': { name: 'probe', version: '1.0.0' } },
});

/** A build script that says who it runs as and what it can read. */
const PROBE_JS = `
const fs = require('fs');
const attempt = (file) => { try { fs.readFileSync(file); return 'ok'; } catch (e) { return e.code; } };
console.log('uid=' + process.getuid() + ' gid=' + process.getgid());
for (const file of process.argv.slice(2)) console.log('read ' + file + ' ' + attempt(file));
fs.writeFileSync('built.txt', 'written by the build');
`;

describe('build isolation (as root)', { skip: !isRoot && 'needs root' }, () => {
  let root: string;
  let repo: FixtureRepo;
  let secretFile: string;

  before(async () => {
    // The layout of a data folder: entered by workload users, Switchyard's files inside 0600.
    root = await makeTempDir('build-isolation');
    await mkdir(join(root, 'keys'), { mode: 0o700 });
    secretFile = join(root, 'keys', 'master.key');
    await writeFile(secretFile, 'never for builds', { mode: 0o600 });
    const targets = [secretFile, `/proc/${process.pid}/environ`].join(' ');
    repo = await createRepo(root, {
      'package.json': JSON.stringify({
        name: 'probe',
        version: '1.0.0',
        scripts: { build: `node probe.js ${targets}`, start: 'node probe.js' },
      }),
      'package-lock.json': LOCKFILE,
      'probe.js': PROBE_JS,
    });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const buildInput = (overrides: Partial<BuildInput> = {}) => {
    const lines: string[] = [];
    const input: BuildInput = {
      buildId: 'build-isolated',
      gitUrl: repo.path,
      ref: 'main',
      workRoot: join(root, 'builds'),
      artifactRoot: join(root, 'artifacts'),
      buildEnv: { npm_config_offline: 'true' },
      secretValues: [],
      runAs: { uid: UID, gid: UID },
      refusedLocalRoot: join(root, 'data'),
      timeoutMs: 60_000,
      signal: new AbortController().signal,
      onLog: (line) => lines.push(line),
      logger: pino({ level: 'silent' }),
      ...overrides,
    };
    return { input, lines };
  };

  test("runs git and the build steps as the workload user, who cannot read Switchyard's files", async () => {
    const { input, lines } = buildInput();
    const result = await runLocalBuild(input);

    assert.ok(lines.includes(`uid=${UID} gid=${UID}`), lines.join('\n'));
    assert.ok(lines.includes(`read ${secretFile} EACCES`), lines.join('\n'));
    assert.ok(lines.includes(`read /proc/${process.pid}/environ EACCES`), lines.join('\n'));

    // The artifact is Switchyard's: readable by the app, not changeable by it.
    const built = await stat(join(result.artifactPath, 'built.txt'));
    assert.deepEqual([built.uid, built.mode & 0o777], [0, 0o644]);
    const folder = await stat(result.artifactPath);
    assert.deepEqual([folder.uid, folder.mode & 0o777], [0, 0o755]);
    assert.equal((await stat(join(root, 'artifacts'))).mode & 0o777, 0o711);
    assert.deepEqual(await readdir(join(root, 'builds')), []);
  });

  test('fails, saying why, when the build user cannot reach the work folder', async () => {
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    const { input } = buildInput({ workRoot: join(closed, 'builds') });
    const error = await runLocalBuild(input).catch((caught: unknown) => caught);
    assert.ok(error instanceof BuildFailedError);
    assert.match(error.message, /cannot reach Switchyard's data folder/);
    assert.deepEqual(await readdir(join(closed, 'builds')), []);
  });

  test("refuses a local repository inside Switchyard's data folder, even through a link", async () => {
    const data = join(root, 'data');
    await mkdir(data, { recursive: true });
    const { input } = buildInput({ gitUrl: `file://${join(data, '..', 'data')}` });
    const error = await runLocalBuild(input).catch((caught: unknown) => caught);
    assert.ok(error instanceof BuildFailedError);
    assert.equal(error.reason, 'clone_failed');
    assert.match(error.message, /data folder/);
  });
});
