import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { startWorkers, type Workers } from '../../platform/workers.js';
import { cliFor, registerThroughCli, type CliRunner } from '../test-support/harness.js';

const run = promisify(execFile);
const HELLO_NODE = join(import.meta.dirname, '..', '..', '..', 'examples', 'hello-node');

/** A git repository holding a copy of `source`, committed on `main`, with no user config. */
async function gitRepoFrom(
  parent: string,
  source: string,
  extra: Record<string, string> = {},
): Promise<string> {
  const dir = await mkdtemp(join(parent, 'repo-'));
  // Readable by others: builds run as the project's workload user when the tests run as root.
  await chmod(dir, 0o755);
  await cp(source, dir, { recursive: true, filter: (path) => !path.includes('node_modules') });
  for (const [name, content] of Object.entries(extra)) await writeFile(join(dir, name), content);
  const env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: parent,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
  };
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.email=cli-test@example.test', '-c', 'user.name=CLI Test', ...args], {
      cwd: dir,
      env,
    });
  await git('init', '--quiet', '--initial-branch=main');
  await git('add', '--all');
  await git('commit', '--quiet', '-m', 'initial');
  return dir;
}

describe('builds and deploys through the CLI with workers running', { timeout: 90_000 }, () => {
  let t: TestApp;
  let workers: Workers;
  let areWorkersStopped = false;
  let cli: CliRunner;
  let root: string;
  let project: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'switchyard-cli-builds-'));
    await chmod(root, 0o711);
    t = await createTestApp('pglite', {
      SWITCHYARD_ROLE: 'all',
      SWITCHYARD_ROUTER_PORT: '0',
      DEPLOY_HEALTH_TIMEOUT_MS: '15000',
      DEPLOY_DRAIN_MS: '0',
    });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    workers = await startWorkers(t.deps);
    cli = await cliFor(t);
    await registerThroughCli(cli);
    project = `builds-${Date.now()}`;
    assert.equal((await cli.run(['projects', 'create', project, '--slug', project])).code, 0);
  });
  after(async () => {
    if (!areWorkersStopped) await workers?.stop(5_000);
    await t?.close();
    await cli?.cleanup();
    await rm(root, { recursive: true, force: true });
  });

  async function serviceFrom(name: string, repo: string): Promise<string> {
    const created = await cli.run(['services', 'create', project, name, '--git', repo]);
    assert.equal(created.code, 0, created.stderr);
    // npm must not reach the network from a test.
    assert.equal(
      (await cli.run(['env', 'set', `${project}/${name}`, 'npm_config_offline=true'])).code,
      0,
    );
    return `${project}/${name}`;
  }

  it('builds create --follow streams the log and ends with the release; deploy --follow goes live', async () => {
    const service = await serviceFrom('hello', await gitRepoFrom(root, HELLO_NODE));

    const build = await cli.run(['builds', 'create', service, '--follow', '--json']);
    assert.equal(build.code, 0, build.stderr);
    assert.match(build.stderr, /following its log/);
    assert.match(build.stderr, /npm ci/);
    const finished = build.json<{ id: string; status: string; releaseId: string }>();
    assert.equal(finished.status, 'succeeded');

    const releases = await cli.run(['releases', 'list', service, '--json']);
    assert.deepEqual(
      releases.json<{ data: Array<{ id: string }> }>().data.map((r) => r.id),
      [finished.releaseId],
    );
    const logs = await cli.run(['builds', 'logs', finished.id]);
    assert.match(logs.stdout, /npm ci/);

    const deploy = await cli.run(['deploy', service, '--env', 'development', '--follow', '--json']);
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.match(deploy.stderr, /: live\n/);
    assert.match(
      deploy.json<{ url: string }>().url,
      /^http:\/\/hello\.development\..*\.localhost:\d+\/$/,
    );

    const status = await cli.run(['status', service, '--env', 'development']);
    assert.match(status.stdout, /live\s+yes, since /);
    const output = await cli.run(['logs', service, '--env', 'development']);
    assert.equal(output.code, 0, output.stderr);
    assert.match(output.stdout, /hello-node listening on/);

    const rollback = await cli.run(['rollback', service, '--env', 'development']);
    assert.equal(rollback.code, 10, 'one release: nothing earlier to return to');
    assert.match(rollback.stderr, /ROLLBACK_TARGET_INVALID/);
  });

  it('builds create --follow exits 20 when the build fails', async () => {
    const failing = JSON.stringify({
      name: 'hello-node',
      version: '1.0.0',
      scripts: { build: 'exit 3', start: 'node server.js' },
    });
    const service = await serviceFrom(
      'broken',
      await gitRepoFrom(root, HELLO_NODE, { 'package.json': failing }),
    );

    const build = await cli.run(['builds', 'create', service, '--follow']);
    assert.equal(build.code, 20, build.stderr);
    assert.match(build.stdout, /^build [\w-]+ failed: /);
    const listed = await cli.run(['builds', 'list', service, '--json']);
    assert.deepEqual(
      listed.json<{ data: Array<{ status: string }> }>().data.map((b) => b.status),
      ['failed'],
    );
  });

  it('deploy --follow exits 30 with the reason when the release keeps crashing', async () => {
    const crashing = JSON.stringify({
      name: 'hello-node',
      version: '1.0.0',
      scripts: { start: 'node -e process.exit(3)' },
    });
    const service = await serviceFrom(
      'crashing',
      await gitRepoFrom(root, HELLO_NODE, { 'package.json': crashing }),
    );
    assert.equal((await cli.run(['builds', 'create', service, '--follow'])).code, 0);

    const deploy = await cli.run(['deploy', service, '--env', 'production', '--follow']);
    assert.equal(deploy.code, 30, deploy.stderr);
    assert.match(deploy.stdout, /^deployment [\w-]+ failed: /);
    assert.match(deploy.stderr, /: failed\n/);
  });

  it('deploy --follow exits 40 when the deployment does not settle in time', async () => {
    // Stopping the workers leaves the new deployment pending for as long as we wait.
    const service = await serviceFrom('slow', await gitRepoFrom(root, HELLO_NODE));
    assert.equal((await cli.run(['builds', 'create', service, '--follow'])).code, 0);
    await workers.stop(5_000);
    areWorkersStopped = true;

    const deploy = await cli.run([
      'deploy',
      service,
      '--env',
      'staging',
      '--follow',
      '--timeout-seconds',
      '1',
    ]);
    assert.equal(deploy.code, 40, deploy.stderr);
    assert.match(deploy.stderr, /timed out after 1s; deployment [\w-]+ is still pending/);
  });
});
