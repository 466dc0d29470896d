import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { createLocalRuntime } from './local-runtime.js';
import { pidDirectory, writePidFile } from './pid-files.js';
import { createTestBench, isAlive, waitFor } from './test-support/test-apps.js';
import type { TestBench } from './test-support/test-apps.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const runtimeModule = new URL('./local-runtime.ts', import.meta.url).href;
const pinoModule = pathToFileURL(createRequire(import.meta.url).resolve('pino')).href;

/** A stand-in Switchyard: starts one workload, prints its statuses, then waits to be killed. */
const SWITCHYARD_SCRIPT = `
import { pino } from ${JSON.stringify(pinoModule)};
import { createLocalRuntime } from ${JSON.stringify(runtimeModule)};
const [stateDir, specJson] = process.argv.slice(2);
const runtime = createLocalRuntime({ stateDir, logger: pino({ level: 'silent' }) });
const statuses = await runtime.start(JSON.parse(specJson), { deadlineMs: 10_000, signal: new AbortController().signal });
process.stdout.write(JSON.stringify(statuses) + '\\n');
setInterval(() => {}, 1_000);
`;

describe('orphan reaping', () => {
  let bench: TestBench;
  const strays: ChildProcess[] = [];

  before(async () => {
    bench = await createTestBench();
  });

  after(async () => {
    for (const stray of strays) stray.kill('SIGKILL');
    await bench.cleanup();
  });

  it('kills instances a crashed Switchyard left behind, on init', async () => {
    const script = path.join(bench.dir, 'switchyard.mts');
    await fs.writeFile(script, SWITCHYARD_SCRIPT);
    const spec = bench.spec({ instances: 2 });
    const switchyard = spawn(
      process.execPath,
      ['--import', 'tsx', script, bench.stateDir, JSON.stringify(spec)],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    strays.push(switchyard);
    const statuses = await firstLine(switchyard);
    const pids = (JSON.parse(statuses) as Array<{ pid: number }>).map((status) => status.pid);

    switchyard.kill('SIGKILL');
    await new Promise((resolve) => switchyard.once('exit', resolve));
    assert.ok(pids.every(isAlive), 'the instances outlive their supervisor');

    const runtime = createLocalRuntime({
      stateDir: bench.stateDir,
      logger: bench.logger,
      drainMs: 2_000,
    });
    await runtime.init();

    await waitFor('orphans gone', () => !pids.some(isAlive));
    assert.deepEqual(await fs.readdir(pidDirectory(bench.stateDir)), []);
    await runtime.close();
  });

  it('leaves alone a process whose pid is recorded but which lacks the marker', async () => {
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    });
    strays.push(bystander);
    const pidDir = pidDirectory(bench.stateDir);
    await fs.mkdir(pidDir, { recursive: true });
    await writePidFile(pidDir, {
      instanceId: 'dep-x-0-abcdef',
      deploymentId: 'dep-x',
      pid: bystander.pid ?? 0,
    });

    const runtime = createLocalRuntime({ stateDir: bench.stateDir, logger: bench.logger });
    await runtime.init();

    assert.equal(isAlive(bystander.pid ?? 0), true);
    assert.deepEqual(await fs.readdir(pidDir), []);
    await runtime.close();
  });
});

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const end = buffered.indexOf('\n');
      if (end >= 0) resolve(buffered.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`stand-in Switchyard exited with ${code}`)));
  });
}
