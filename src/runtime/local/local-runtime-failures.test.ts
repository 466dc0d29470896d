import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { WorkloadStartError } from '../runtime.js';
import type { RuntimeDriver, WorkloadEvent } from '../runtime.js';
import { createLocalRuntime } from './local-runtime.js';
import {
  createTestBench,
  httpRequest,
  markedProcesses,
  waitFor,
} from './test-support/test-apps.js';
import type { TestBench } from './test-support/test-apps.js';

describe('local runtime failures', () => {
  let bench: TestBench;
  let runtime: RuntimeDriver;
  const events: WorkloadEvent[] = [];

  before(async () => {
    bench = await createTestBench();
    runtime = createLocalRuntime({
      stateDir: bench.stateDir,
      logger: bench.logger,
      healthIntervalMs: 50,
      probeTimeoutMs: 300,
      restartBackoff: { initialMs: 100, maxMs: 400 },
      maxRestarts: 3,
      drainMs: 1_000,
    });
    runtime.onEvent((event) => events.push(event));
  });

  after(async () => {
    await runtime.close();
    await bench.cleanup();
  });

  const eventsOf = (deploymentId: string): WorkloadEvent[] =>
    events.filter((event) => event.deploymentId === deploymentId);

  it('restarts a crashed instance after a backoff and counts the restart', async () => {
    const spec = bench.spec();
    const [first] = await runtime.start(spec, {
      deadlineMs: 10_000,
      signal: new AbortController().signal,
    });

    await httpRequest(first?.port ?? 0, { path: '/crash' });
    await waitFor('healthy after restart', () => {
      const [status] = runtime.status(spec.deploymentId);
      return status?.state === 'healthy' && status.restarts === 1;
    });

    const [status] = runtime.status(spec.deploymentId);
    assert.equal(status?.lastExitCode, 7);
    assert.notEqual(status?.pid, first?.pid);
    assert.equal(status?.port, first?.port, 'a restarted instance keeps its free port');
    const mine = eventsOf(spec.deploymentId);
    assert.deepEqual(
      mine.map((event) => event.type),
      ['started', 'healthy', 'crashed', 'restarting', 'started', 'healthy'],
    );
    const crashedAt = mine[2]?.at.getTime() ?? 0;
    const restartedAt = mine[4]?.at.getTime() ?? 0;
    assert.ok(restartedAt - crashedAt >= 50, 'waits at least half the initial backoff');
    await runtime.stop(spec.deploymentId);
  });

  it('gives up on a crash loop with growing delays and fails the start as crashed', async () => {
    const spec = bench.spec({ mode: 'crash' });

    const error = await runtime
      .start(spec, { deadlineMs: 10_000, signal: new AbortController().signal })
      .catch((caught: unknown) => caught);

    assert.ok(error instanceof WorkloadStartError);
    assert.equal(error.reason, 'crashed');
    assert.equal(error.instances[0]?.restarts, 3);
    const mine = eventsOf(spec.deploymentId);
    assert.equal(mine.filter((event) => event.type === 'crashed').length, 4);
    assert.equal(mine.find((event) => event.type === 'crashed')?.exitCode, 3);
    assert.ok(mine.some((event) => event.type === 'gave_up'));

    // Equal jitter keeps each delay within [backoff/2, backoff]: 100, 200, 400 ms.
    const delays = restartDelays(mine);
    assert.equal(delays.length, 3);
    delays.forEach((delay, index) => {
      const ceiling = 100 * 2 ** index;
      assert.ok(delay >= ceiling / 2 && delay <= ceiling + 500, `delay ${index}: ${delay} ms`);
    });
    assert.deepEqual(runtime.status(spec.deploymentId), []);
  });

  it('fails as unhealthy after the deadline and leaves nothing running', async () => {
    const spec = bench.spec({ mode: 'failing', instances: 2 });
    const startedAt = Date.now();

    const error = await runtime
      .start(spec, { deadlineMs: 1_500, signal: new AbortController().signal })
      .catch((caught: unknown) => caught);

    assert.ok(error instanceof WorkloadStartError);
    assert.equal(error.reason, 'unhealthy');
    assert.ok(Date.now() - startedAt >= 1_450);
    assert.deepEqual(await markedProcesses(spec.deploymentId), []);
    assert.deepEqual(runtime.status(spec.deploymentId), []);
  });

  it('fails as timeout when an instance never answers, with an absolute deadline', async () => {
    const spec = bench.spec({ mode: 'silent' });

    const error = await runtime
      .start(spec, { deadlineMs: Date.now() + 400, signal: new AbortController().signal })
      .catch((caught: unknown) => caught);

    assert.ok(error instanceof WorkloadStartError);
    assert.equal(error.reason, 'timeout');
    assert.deepEqual(await markedProcesses(spec.deploymentId), []);
  });

  it('honours the abort signal before the deadline', async () => {
    const spec = bench.spec({ mode: 'silent' });
    const controller = new AbortController();
    const startedAt = Date.now();
    setTimeout(() => controller.abort(), 200);

    const error = await runtime
      .start(spec, { deadlineMs: 30_000, signal: controller.signal })
      .catch((caught: unknown) => caught);

    assert.ok(error instanceof WorkloadStartError);
    assert.equal(error.reason, 'cancelled');
    assert.ok(Date.now() - startedAt < 5_000);
    assert.deepEqual(await markedProcesses(spec.deploymentId), []);
  });

  it('fails as crashed when the command does not exist', async () => {
    const spec = bench.spec({ start: { command: '/nonexistent/switchyard-app', args: [] } });

    const error = await runtime
      .start(spec, { deadlineMs: 10_000, signal: new AbortController().signal })
      .catch((caught: unknown) => caught);

    assert.ok(error instanceof WorkloadStartError);
    assert.equal(error.reason, 'crashed');
  });
});

/** Milliseconds from each `crashed` event to the `started` event that follows it. */
function restartDelays(events: WorkloadEvent[]): number[] {
  const delays: number[] = [];
  events.forEach((event, index) => {
    if (event.type !== 'crashed') return;
    const next = events.slice(index).find((later) => later.type === 'started');
    if (next) delays.push(next.at.getTime() - event.at.getTime());
  });
  return delays;
}
