import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { prepareDataFolder, warnWithoutIsolation } from './data-folder.js';

const silent = pino({ level: 'silent' });
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe('prepareDataFolder', () => {
  let top: string;
  let sequence = 0;
  const configFor = (isolation: 'uid' | 'none', dataDir = join(top, `data-${++sequence}`)) =>
    // Whether this process is root does not matter here: only modes are set and checked.
    loadConfig({ SWITCHYARD_DATA_DIR: dataDir, SWITCHYARD_WORKLOAD_ISOLATION: isolation }, true);

  before(async () => {
    top = await mkdtemp(join(tmpdir(), 'switchyard-data-folder-'));
    await chmod(top, 0o711);
  });

  after(async () => {
    await rm(top, { recursive: true, force: true });
  });

  it('creates the data folder and pgdata/ owner-only without isolation', async () => {
    const config = configFor('none');
    await prepareDataFolder(config, silent);
    assert.equal(await modeOf(config.dataDir), 0o700);
    assert.equal(await modeOf(join(config.dataDir, 'pgdata')), 0o700);
  });

  it('closes an older folder: world-readable pgdata/, keys and files lose group and other bits', async () => {
    const config = configFor('uid');
    const { dataDir } = config;
    await mkdir(join(dataDir, 'pgdata', 'base'), { recursive: true, mode: 0o755 });
    await writeFile(join(dataDir, 'pgdata', 'base', '1'), 'rows', { mode: 0o644 });
    await chmod(join(dataDir, 'pgdata'), 0o755);
    await mkdir(join(dataDir, 'keys'), { mode: 0o755 });
    await mkdir(join(dataDir, 'artifacts'), { mode: 0o755 });
    await writeFile(join(dataDir, 'stray.key'), 'secret', { mode: 0o644 });
    await chmod(dataDir, 0o755);

    await prepareDataFolder(config, silent);

    assert.equal(await modeOf(join(dataDir, 'pgdata')), 0o700);
    assert.equal(await modeOf(join(dataDir, 'pgdata', 'base')), 0o700);
    assert.equal(await modeOf(join(dataDir, 'pgdata', 'base', '1')), 0o600);
    assert.equal(await modeOf(join(dataDir, 'keys')), 0o700);
    assert.equal(await modeOf(join(dataDir, 'stray.key')), 0o600);
    // Workload users pass through, never list: the data folder and the artifacts in it.
    assert.equal(await modeOf(dataDir), 0o711);
    assert.equal(await modeOf(join(dataDir, 'artifacts')), 0o711);
  });

  it('closes the workload folders again once isolation is off', async () => {
    const config = configFor('none');
    await mkdir(join(config.dataDir, 'artifacts'), { recursive: true, mode: 0o711 });
    await prepareDataFolder(config, silent);
    assert.equal(await modeOf(join(config.dataDir, 'artifacts')), 0o700);
  });

  it('says, as an error, when workload users cannot pass a folder above the data folder', async () => {
    const closed = join(top, 'closed');
    await mkdir(closed, { mode: 0o700 });
    const config = configFor('uid', join(closed, 'data'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });

    await prepareDataFolder(config, logger);

    const errors = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const error = errors.find((line) => line['level'] === 50);
    assert.equal(error?.['folder'], closed);
    assert.match(String(error?.['msg']), /workload users cannot reach the data folder/);
  });
});

describe('workload isolation settings', () => {
  it('default to uid as root and none otherwise; uid without root is a configuration error', () => {
    assert.equal(loadConfig({}, true).workloads.isolation, 'uid');
    assert.equal(loadConfig({}, false).workloads.isolation, 'none');
    assert.equal(loadConfig({}, true).workloads.uidBase, 200_000);
    assert.throws(
      () => loadConfig({ SWITCHYARD_WORKLOAD_ISOLATION: 'uid' }, false),
      (error) =>
        error instanceof ConfigError && /needs Switchyard to run as root/.test(error.message),
    );
  });

  it('refuses relative local git roots and a uid base out of range', () => {
    assert.throws(
      () => loadConfig({ SWITCHYARD_GIT_LOCAL_ROOTS: '/srv/git,repos' }, true),
      (error) =>
        error instanceof ConfigError && /"repos" is not an absolute path/.test(error.message),
    );
    assert.throws(() => loadConfig({ SWITCHYARD_WORKLOAD_UID_BASE: '0' }, true), ConfigError);
    assert.deepEqual(
      loadConfig({ SWITCHYARD_GIT_LOCAL_ROOTS: '/srv/git, /home/git' }, true).git.localRoots,
      ['/srv/git', '/home/git'],
    );
  });
});

describe('warnWithoutIsolation', () => {
  const warnings = (isolation: 'uid' | 'none') => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const config = loadConfig({ SWITCHYARD_WORKLOAD_ISOLATION: isolation }, true);
    warnWithoutIsolation(config, logger);
    return lines.map((line) => JSON.parse(line) as { level: number; msg: string });
  };

  it('warns once that workloads run as Switchyard when isolation is off, and is quiet when on', () => {
    const off = warnings('none');
    assert.equal(off.length, 1);
    assert.equal(off[0]?.level, 40);
    assert.match(off[0]?.msg ?? '', /run as (root|this user)/);
    assert.deepEqual(warnings('uid'), []);
  });
});
