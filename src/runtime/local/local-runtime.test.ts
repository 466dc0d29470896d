import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { RuntimeDriver, WorkloadEvent } from '../runtime.js';
import { createLocalRuntime } from './local-runtime.js';
import {
  createTestBench,
  httpRequest,
  isAlive,
  markedProcesses,
  waitFor,
} from './test-support/test-apps.js';
import type { TestBench } from './test-support/test-apps.js';

const start = { deadlineMs: 10_000 };

describe('local runtime', () => {
  let bench: TestBench;
  let runtime: RuntimeDriver;
  const events: WorkloadEvent[] = [];

  before(async () => {
    bench = await createTestBench();
    runtime = createLocalRuntime({
      stateDir: bench.stateDir,
      logger: bench.logger,
      healthIntervalMs: 50,
      probeTimeoutMs: 500,
      unhealthyThreshold: 2,
      drainMs: 2_000,
    });
    runtime.onEvent((event) => events.push(event));
  });

  after(async () => {
    await runtime.close();
    await bench.cleanup();
  });

  it('resolves start once every instance is healthy and lists them as endpoints', async () => {
    const spec = bench.spec({ instances: 2 });
    const signal = new AbortController().signal;

    const statuses = await runtime.start(spec, { ...start, signal });

    assert.equal(statuses.length, 2);
    assert.ok(statuses.every((status) => status.state === 'healthy'));
    const ports = runtime.endpoints(spec.deploymentId).map((endpoint) => endpoint.port);
    assert.equal(new Set(ports).size, 2);
    for (const port of ports) {
      const answer = await httpRequest(port);
      assert.equal(JSON.parse(answer.body).port, String(port));
    }
    const types = events.filter((e) => e.deploymentId === spec.deploymentId).map((e) => e.type);
    assert.deepEqual(types.sort(), ['healthy', 'healthy', 'started', 'started']);
    await runtime.stop(spec.deploymentId);
    assert.deepEqual(runtime.status(spec.deploymentId), []);
  });

  it('passes configuration byte-exact and none of the parent environment', async () => {
    process.env.SWITCHYARD_TEST_PARENT_SECRET = 'postgres://user:secret@db/prod';
    const tricky = {
      DOLLAR: 'pa$$word $HOME ${PATH} $(id)',
      QUOTES: `it's "quoted" \`backtick\``,
      HASH: 'value # not a comment',
      EQUALS: 'a=b==c=',
      SPACES: '  leading and trailing  ',
      UNICODE: 'zürich 東京 🚀',
      PEM: '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nab+/c=\n-----END PRIVATE KEY-----\n',
      BACKSLASH: 'C:\\path\\n\\t',
      EMPTY: '',
    };
    const spec = bench.spec({ env: tricky });

    const [status] = await runtime.start(spec, { ...start, signal: new AbortController().signal });
    const env = JSON.parse((await httpRequest(status?.port ?? 0, { path: '/env' })).body);

    for (const [name, value] of Object.entries(tricky)) assert.equal(env[name], value, name);
    assert.equal(env.SWITCHYARD_TEST_PARENT_SECRET, undefined);
    assert.equal(env.PORT, String(status?.port));
    assert.equal(env.HOST, '127.0.0.1');
    assert.ok(env.HOME.startsWith(bench.stateDir), 'HOME is a per-instance folder');
    assert.deepEqual(
      Object.keys(env).sort(),
      ['APP_MODE', 'HOME', 'HOST', 'LANG', 'PATH', 'PORT', 'SWITCHYARD_INSTANCE_ID']
        .concat(Object.keys(tricky))
        .sort(),
    );
    delete process.env.SWITCHYARD_TEST_PARENT_SECRET;
    await runtime.stop(spec.deploymentId);
  });

  it('takes a failing instance out of endpoints and back when it recovers', async () => {
    const spec = bench.spec();
    const [status] = await runtime.start(spec, { ...start, signal: new AbortController().signal });
    const port = status?.port ?? 0;

    await httpRequest(port, { path: '/toggle' });
    await waitFor('unhealthy', () => runtime.status(spec.deploymentId)[0]?.state === 'unhealthy');
    assert.deepEqual(runtime.endpoints(spec.deploymentId), []);

    await httpRequest(port, { path: '/toggle' });
    await waitFor('healthy again', () => runtime.endpoints(spec.deploymentId).length === 1);
    const mine = events.filter((e) => e.deploymentId === spec.deploymentId).map((e) => e.type);
    assert.deepEqual(mine, ['started', 'healthy', 'unhealthy', 'healthy']);
    await runtime.stop(spec.deploymentId);
  });

  it('lets in-flight requests finish while stopping', async () => {
    const spec = bench.spec();
    const [status] = await runtime.start(spec, { ...start, signal: new AbortController().signal });
    const pid = status?.pid ?? 0;

    const slow = httpRequest(status?.port ?? 0, { path: '/slow?ms=300' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await runtime.stop(spec.deploymentId);

    assert.equal((await slow).body, 'slow done');
    assert.equal(isAlive(pid), false);
    const stopped = events.find(
      (e) => e.deploymentId === spec.deploymentId && e.type === 'stopped',
    );
    assert.equal(stopped?.exitCode, 0);
  });

  it('kills an instance that ignores SIGTERM once drainMs pass', async () => {
    const spec = bench.spec({ env: { IGNORE_SIGTERM: '1' } });
    const [status] = await runtime.start(spec, { ...start, signal: new AbortController().signal });

    const startedAt = Date.now();
    await runtime.stop(spec.deploymentId, { drainMs: 300 });

    assert.ok(Date.now() - startedAt >= 290);
    assert.equal(isAlive(status?.pid ?? 0), false);
    const stopped = events.find(
      (e) => e.deploymentId === spec.deploymentId && e.type === 'stopped',
    );
    assert.equal(stopped?.signal, 'SIGKILL');
    await runtime.stop(spec.deploymentId); // idempotent
  });

  it('starts nothing and resolves for zero instances', async () => {
    const spec = bench.spec({ instances: 0 });
    const statuses = await runtime.start(spec, { ...start, signal: new AbortController().signal });
    assert.deepEqual(statuses, []);
    await runtime.stop(spec.deploymentId);
  });
});

describe('local runtime close', () => {
  let bench: TestBench;
  before(async () => {
    bench = await createTestBench();
  });
  after(() => bench.cleanup());

  it('leaves no process and no timer behind', async () => {
    const timersBefore = countTimers();
    // A long interval leaves a probe timer pending when close() runs.
    const runtime = createLocalRuntime({
      stateDir: bench.stateDir,
      logger: bench.logger,
      healthIntervalMs: 60_000,
    });
    // A shell in front proves the whole process group goes, not only the leader.
    const spec = bench.spec({
      instances: 2,
      start: {
        command: '/bin/sh',
        args: ['-c', `"${process.execPath}" app.cjs; echo unreachable`],
      },
    });
    await runtime.start(spec, { deadlineMs: 10_000, signal: new AbortController().signal });
    assert.equal((await markedProcesses(spec.deploymentId)).length, 4);

    await runtime.close();

    assert.deepEqual(await markedProcesses(spec.deploymentId), []);
    assert.equal(countTimers(), timersBefore);
    await assert.rejects(
      runtime.start(spec, { deadlineMs: 1_000, signal: new AbortController().signal }),
    );
  });
});

function countTimers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}
