import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import type { LogLine, RuntimeDriver } from '../runtime.js';
import { createLocalRuntime } from './local-runtime.js';
import { createTestBench, httpRequest, waitFor } from './test-support/test-apps.js';
import type { TestBench } from './test-support/test-apps.js';
import { LogAnnouncer, WorkloadLogWriter, previousPart, readLog } from './workload-logs.js';

async function collect(lines: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const collected: LogLine[] = [];
  for await (const line of lines) collected.push(line);
  return collected;
}

describe('workload logs through the local runtime', () => {
  let bench: TestBench;
  let runtime: RuntimeDriver;

  before(async () => {
    bench = await createTestBench();
    runtime = createLocalRuntime({ stateDir: bench.stateDir, logger: bench.logger });
  });

  after(async () => {
    await runtime.close();
    await bench.cleanup();
  });

  it('records stdout, stderr and system lines as NDJSON and follows new ones', async () => {
    const spec = bench.spec();
    const [status] = await runtime.start(spec, {
      deadlineMs: 10_000,
      signal: AbortSignal.timeout(10_000),
    });
    const port = status?.port ?? 0;
    await waitFor('listening line', async () => {
      const past = await collect(
        runtime.logs(spec.deploymentId, { follow: false, signal: new AbortController().signal }),
      );
      return past.some((line) => line.line === `listening on ${port}`);
    });

    const past = await collect(
      runtime.logs(spec.deploymentId, { follow: false, signal: new AbortController().signal }),
    );
    // The two pipes are read independently, so only the system line's place is certain.
    assert.deepEqual(
      [past[0]?.stream, past[0]?.line],
      ['system', `instance started (pid ${status?.pid}, port ${port})`],
    );
    assert.deepEqual(
      past
        .slice(1)
        .map((line) => [line.stream, line.line])
        .sort(),
      [
        ['stderr', 'booting in healthy mode'],
        ['stdout', `listening on ${port}`],
      ],
    );
    assert.ok(
      past.every((line) => line.instanceId === status?.id && !Number.isNaN(Date.parse(line.at))),
    );

    const controller = new AbortController();
    const followed: LogLine[] = [];
    const following = (async () => {
      for await (const line of runtime.logs(spec.deploymentId, {
        follow: true,
        signal: controller.signal,
        tail: 1,
      })) {
        followed.push(line);
      }
    })();
    await httpRequest(port, { path: `/log?line=${encodeURIComponent('new line ✓ "quoted"')}` });
    await waitFor('followed line', () =>
      followed.some((line) => line.line === 'new line ✓ "quoted"'),
    );
    controller.abort();
    await following;
    assert.equal(followed[0]?.line, `listening on ${port}`, 'tail: 1 starts at the last past line');

    await runtime.stop(spec.deploymentId);
    const file = await fs.readFile(
      path.join(bench.stateDir, 'logs', `${spec.deploymentId}.log`),
      'utf8',
    );
    const onDisk = file
      .trimEnd()
      .split('\n')
      .map((text) => JSON.parse(text) as LogLine);
    assert.deepEqual(
      onDisk.slice(-2).map((line) => line.line),
      ['draining', 'instance stopped'],
    );
  });

  it('yields nothing for a deployment without output and refuses unsafe ids', async () => {
    const lines = await collect(
      runtime.logs('never-ran', { follow: false, signal: new AbortController().signal }),
    );
    assert.deepEqual(lines, []);
    assert.throws(
      () => runtime.logs('../etc/passwd', { follow: false, signal: new AbortController().signal }),
      {
        code: 'VALIDATION_FAILED',
      },
    );
  });
});

describe('readLog', () => {
  it('holds back a partial last line until it is complete', async () => {
    const bench = await createTestBench();
    const file = path.join(bench.dir, 'partial.log');
    const first: LogLine = {
      at: new Date().toISOString(),
      instanceId: 'i',
      stream: 'stdout',
      line: 'one',
    };
    const second = { ...first, line: 'two' };
    const text = `${JSON.stringify(first)}\n${JSON.stringify(second)}\n`;
    await fs.writeFile(file, text.slice(0, -10));

    const announcer = new LogAnnouncer();
    const controller = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      const lines = readLog(file, {
        follow: true,
        signal: controller.signal,
        subscribe: (l) => announcer.subscribe('d', l),
      });
      for await (const line of lines) seen.push(line.line);
    })();
    await waitFor('first line', () => seen.length === 1);
    await fs.appendFile(file, text.slice(-10));
    announcer.announce('d');
    await waitFor('second line', () => seen.length === 2);
    controller.abort();
    await following;

    assert.deepEqual(seen, ['one', 'two']);
    await bench.cleanup();
  });

  it('returns the last lines for tail and keeps order across writes', async () => {
    const bench = await createTestBench();
    const file = path.join(bench.dir, 'tail.log');
    const writer = new WorkloadLogWriter(file, () => undefined);
    for (let index = 0; index < 1000; index++) {
      writer.append({
        at: new Date().toISOString(),
        instanceId: 'i',
        stream: 'stdout',
        line: `line ${index}`,
      });
    }
    await writer.flush();

    const signal = new AbortController().signal;
    const subscribe = (): (() => void) => () => undefined;
    const all = await collect(readLog(file, { follow: false, signal, subscribe }));
    const last = await collect(readLog(file, { follow: false, signal, subscribe, tail: 3 }));
    const none = await collect(readLog(file, { follow: false, signal, subscribe, tail: 0 }));

    assert.deepEqual(
      all.map((line) => line.line),
      Array.from({ length: 1000 }, (_, i) => `line ${i}`),
    );
    assert.deepEqual(
      last.map((line) => line.line),
      ['line 997', 'line 998', 'line 999'],
    );
    assert.deepEqual(none, []);
    await bench.cleanup();
  });

  it('rotates a file that would pass its cap, keeping one previous part', async () => {
    const bench = await createTestBench();
    const file = path.join(bench.dir, 'capped.log');
    const maxBytes = 4096;
    const writer = new WorkloadLogWriter(file, () => undefined, maxBytes);
    for (let index = 0; index < 500; index++) {
      writer.append({
        at: new Date().toISOString(),
        instanceId: 'i',
        stream: 'stdout',
        line: `line ${index}`,
      });
      if (index % 7 === 0) await writer.flush();
    }
    await writer.flush();

    const current = await fs.stat(file);
    const previous = await fs.stat(previousPart(file));
    assert.ok(current.size <= maxBytes, `current part ${current.size} bytes`);
    assert.ok(previous.size <= maxBytes, `previous part ${previous.size} bytes`);
    const names = await fs.readdir(bench.dir);
    assert.deepEqual(names.filter((name) => name.startsWith('capped')).sort(), [
      'capped.log',
      'capped.log.1',
    ]);

    // Both parts together end with the newest lines, in order, each once.
    const signal = new AbortController().signal;
    const subscribe = (): (() => void) => () => undefined;
    const currentLines = (await collect(readLog(file, { follow: false, signal, subscribe }))).map(
      (l) => l.line,
    );
    const wanted = currentLines.length + 10;
    const tail = await collect(readLog(file, { follow: false, signal, subscribe, tail: wanted }));
    assert.deepEqual(
      tail.map((line) => line.line),
      Array.from({ length: wanted }, (_, i) => `line ${500 - wanted + i}`),
    );
    await bench.cleanup();
  });

  it('a follower reads every line once, in order, across rotations', async () => {
    const bench = await createTestBench();
    const file = path.join(bench.dir, 'followed.log');
    const announcer = new LogAnnouncer();
    const writer = new WorkloadLogWriter(file, () => announcer.announce('d'), 2048);
    const controller = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      const lines = readLog(file, {
        follow: true,
        signal: controller.signal,
        subscribe: (listener) => announcer.subscribe('d', listener),
        pollMs: 20,
      });
      for await (const line of lines) seen.push(line.line);
    })();
    const total = 300;
    for (let index = 0; index < total; index++) {
      writer.append({
        at: new Date().toISOString(),
        instanceId: 'i',
        stream: 'stdout',
        line: `line ${index}`,
      });
      await writer.flush();
      // At most one rotation between two reads of the follower.
      if (index % 10 === 9) await waitFor('follower caught up', () => seen.length === index + 1);
    }
    await waitFor('every line', () => seen.length >= total);
    controller.abort();
    await following;

    assert.ok((await fs.stat(previousPart(file))).size > 0, 'the log rotated');
    assert.deepEqual(
      seen,
      Array.from({ length: total }, (_, i) => `line ${i}`),
    );
    await bench.cleanup();
  });
});
