import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { startWorkers, type Workers } from '../../platform/workers.js';
import { cliFor, registerThroughCli, type CliRunner } from '../test-support/harness.js';

describe('switchyard secrets', { timeout: 90_000 }, () => {
  let t: TestApp;
  let workers: Workers;
  let cli: CliRunner;
  let dir: string;
  const project = `secrets-${Date.now()}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-secrets-'));
    t = await createTestApp('pglite', { SWITCHYARD_ROLE: 'all', SWITCHYARD_ROUTER_PORT: '0' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    workers = await startWorkers(t.deps);
    cli = await cliFor(t);
    await registerThroughCli(cli);
    assert.equal((await cli.run(['projects', 'create', project, '--slug', project])).code, 0);
    const service = await cli.run([
      'services',
      'create',
      project,
      'web',
      '--git',
      'https://github.com/acme/web.git',
    ]);
    assert.equal(service.code, 0, service.stderr);
  });
  after(async () => {
    await workers?.stop(5_000);
    await t?.close();
    await cli?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('sets from stdin and from a file byte-exact, and prints exactly what is stored', async () => {
    const multiline = 'line one\n  line two\r\nno newline at end';
    const set = await cli.run(['secrets', 'set', project, 'MULTI'], { stdin: multiline });
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await cli.run(['secrets', 'get', project, 'MULTI'])).stdout, multiline);

    const file = join(dir, 'pem');
    await writeFile(file, '-----BEGIN KEY-----\nabc\n-----END KEY-----\n');
    const fromFile = await cli.run([
      'secrets',
      'set',
      `${project}/web`,
      'TLS_KEY',
      '--from-file',
      file,
    ]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(
      (await cli.run(['secrets', 'get', `${project}/web`, 'TLS_KEY'])).stdout,
      '-----BEGIN KEY-----\nabc\n-----END KEY-----\n',
    );
  });

  it('lists names and versions without values, and rolls back to a version', async () => {
    await cli.run(['secrets', 'set', project, 'DB_PASSWORD', '--env', 'staging'], {
      stdin: 'first-pass',
    });
    await cli.run(['secrets', 'set', project, 'DB_PASSWORD', '--env', 'staging'], {
      stdin: 'second-pass',
    });
    const listed = await cli.run(['secrets', 'list', project, '--env', 'staging']);
    assert.match(listed.stdout, /DB_PASSWORD\s+environment\s+2/);
    assert.ok(!listed.stdout.includes('first-pass') && !listed.stdout.includes('second-pass'));

    const rolled = await cli.run([
      'secrets',
      'rollback',
      project,
      'DB_PASSWORD',
      '--env',
      'staging',
      '--version',
      '1',
    ]);
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.equal(
      (await cli.run(['secrets', 'get', project, 'DB_PASSWORD', '--env', 'staging'])).stdout,
      'first-pass',
    );
    const versions = await cli.run([
      'secrets',
      'versions',
      project,
      'DB_PASSWORD',
      '--env',
      'staging',
      '--json',
    ]);
    assert.deepEqual(
      versions
        .json<{ data: Array<{ version: number; isCurrent: boolean }> }>()
        .data.map((v) => [v.version, v.isCurrent]),
      [
        [2, false],
        [1, true],
      ],
    );
    const old = await cli.run([
      'secrets',
      'get',
      project,
      'DB_PASSWORD',
      '--env',
      'staging',
      '--version',
      '2',
    ]);
    assert.equal(old.stdout, 'second-pass');
  });

  it('rotates and follows the rotation to its end', async () => {
    await cli.run(['secrets', 'set', `${project}/web`, 'TOKEN'], { stdin: 'before' });
    const rotated = await cli.run(
      ['secrets', 'rotate', `${project}/web`, 'TOKEN', '--stdin', '--follow'],
      { stdin: 'after' },
    );
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stderr, /succeeded/);
    assert.equal((await cli.run(['secrets', 'get', `${project}/web`, 'TOKEN'])).stdout, 'after');
  });

  it('never takes a value as an argument, and refuses --env for a service', async () => {
    const extra = await cli.run(['secrets', 'set', project, 'X', 'the-value']);
    assert.equal(extra.code, 2);
    const empty = await cli.run(['secrets', 'set', project, 'X'], { stdin: '' });
    assert.equal(empty.code, 2);
    const envForService = await cli.run(['secrets', 'list', `${project}/web`, '--env', 'staging']);
    assert.equal(envForService.code, 2);
    assert.match(envForService.stderr, /a service secret reaches every environment/);
  });
});
