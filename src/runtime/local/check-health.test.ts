import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { LogLine, RuntimeDriver } from '../runtime.js';
import { createLocalRuntime } from './local-runtime.js';
import { createTestBench, httpRequest, waitFor, type TestBench } from './test-support/test-apps.js';

describe('local runtime: what secret rotation needs', () => {
  let bench: TestBench;
  let runtime: RuntimeDriver;
  const signal = new AbortController().signal;

  before(async () => {
    bench = await createTestBench();
    // A long health interval: checkHealth must probe now, not report the last cached probe.
    runtime = createLocalRuntime({
      stateDir: bench.stateDir,
      logger: bench.logger,
      healthIntervalMs: 60_000,
      drainMs: 1_000,
    });
  });
  after(async () => {
    await runtime.close();
    await bench.cleanup();
  });

  it('checkHealth probes every instance now and reports the one that stopped answering', async () => {
    const spec = bench.spec({ instances: 2 });
    await runtime.start(spec, { signal, deadlineMs: 10_000 });
    assert.equal((await runtime.checkHealth(spec.deploymentId, { signal })).isHealthy, true);

    const [first] = runtime.endpoints(spec.deploymentId);
    assert.ok(first !== undefined);
    await httpRequest(first.port, { path: '/toggle' });
    const health = await runtime.checkHealth(spec.deploymentId, { signal });
    assert.equal(health.isHealthy, false);
    assert.deepEqual(health.instances.map((i) => i.isHealthy).sort(), [false, true]);

    await runtime.stop(spec.deploymentId);
    assert.deepEqual(await runtime.checkHealth(spec.deploymentId, { signal }), {
      isHealthy: false,
      instances: [],
    });
  });

  it("redacts the workload's secret values from its output before it is stored", async () => {
    const secret = 'sk_live_redact_me_123';
    const spec = bench.spec({ env: { API_KEY: secret }, redact: [secret] });
    await runtime.start(spec, { signal, deadlineMs: 10_000 });
    const [endpoint] = runtime.endpoints(spec.deploymentId);
    assert.ok(endpoint !== undefined);
    await httpRequest(endpoint.port, {
      path: `/log?line=${encodeURIComponent(`key is ${secret}!`)}`,
    });

    const lines: LogLine[] = [];
    await waitFor('the logged line', async () => {
      lines.length = 0;
      for await (const line of runtime.logs(spec.deploymentId, { follow: false, signal }))
        lines.push(line);
      return lines.some((line) => line.line.startsWith('key is'));
    });
    assert.ok(lines.some((line) => line.line === 'key is [REDACTED]!'));
    assert.ok(!lines.some((line) => line.line.includes(secret)));
    await runtime.stop(spec.deploymentId);
  });
});
