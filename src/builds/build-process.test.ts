import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { reapOrphanedBuilds, runProcess, SYSTEM_PATH, type ProcessSpec } from './build-process.js';
import { createLineSink, NO_REDACTION } from './log-redaction.js';
import { isProcessAlive, makeTempDir, waitFor } from './test-support/git-repos.js';

let dir: string;
before(async () => {
  dir = await makeTempDir('build-process');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spec(script: string, overrides: Partial<ProcessSpec> = {}) {
  const lines: string[] = [];
  const sink = createLineSink(NO_REDACTION, (line) => lines.push(line));
  const full: ProcessSpec = {
    command: '/bin/sh',
    args: ['-c', script],
    cwd: dir,
    env: { PATH: SYSTEM_PATH },
    signal: new AbortController().signal,
    stdout: sink,
    stderr: sink,
    ...overrides,
  };
  return { spec: full, lines };
}

test('reports the exit code and the output of both streams', async () => {
  const { spec: s, lines } = spec('echo out; echo err >&2; exit 4');
  assert.deepEqual(await runProcess(s), { exitCode: 4, signalName: null });
  assert.deepEqual([...lines].sort(), ['err', 'out']);
});

test('passes only the given environment', async () => {
  process.env['SWITCHYARD_PARENT_ONLY'] = 'x';
  const { spec: s, lines } = spec('echo "[$SWITCHYARD_PARENT_ONLY][$GIVEN]"', {
    env: { PATH: SYSTEM_PATH, GIVEN: 'yes' },
  });
  await runProcess(s);
  delete process.env['SWITCHYARD_PARENT_ONLY'];
  assert.deepEqual(lines, ['[][yes]']);
});

test('abort sends SIGTERM, then SIGKILL after the grace, to the whole process group', async () => {
  const pidFile = join(dir, 'stubborn.pid');
  const controller = new AbortController();
  // The shell and its child both ignore SIGTERM; only SIGKILL ends them.
  const { spec: s } = spec(`trap '' TERM; sleep 60 & echo $! > ${pidFile}; echo ready; wait`, {
    signal: controller.signal,
    killGraceMs: 200,
    stdout: createLineSink(
      NO_REDACTION,
      (line) => line === 'ready' && controller.abort(new Error('stop')),
    ),
  });
  await assert.rejects(runProcess(s), /stop/);

  const pid = Number(await readFile(pidFile, 'utf8'));
  await waitFor(async () => !(await isProcessAlive(pid)), 5_000);
});

test('kills what a finished step left running in its group', async () => {
  const pidFile = join(dir, 'leftover.pid');
  const { spec: s } = spec(`sleep 60 > /dev/null 2>&1 & echo $! > ${pidFile}`);
  assert.equal((await runProcess(s)).exitCode, 0);

  const pid = Number(await readFile(pidFile, 'utf8'));
  await waitFor(async () => !(await isProcessAlive(pid)), 5_000);
});

test('rejects when the command cannot be started', async () => {
  const { spec: s } = spec('', { command: join(dir, 'no-such-program'), args: [] });
  await assert.rejects(runProcess(s), { code: 'ENOENT' });
});

test('does not start at all when the signal is already aborted', async () => {
  const { spec: s } = spec(`touch ${join(dir, 'ran')}`, {
    signal: AbortSignal.abort(new Error('early')),
  });
  await assert.rejects(runProcess(s), /early/);
  await assert.rejects(readFile(join(dir, 'ran')));
});

const quiet = pino({ level: 'silent' });

/** Starts a Node.js process that runs one build step printing its pid; resolves with both. */
async function startOwner(): Promise<{ owner: ReturnType<typeof spawn>; buildPid: number }> {
  const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
  const script = join(dir, 'owner.mts');
  await writeFile(
    script,
    [
      `import { runProcess, SYSTEM_PATH } from ${JSON.stringify(here('./build-process.ts'))};`,
      `import { createLineSink, NO_REDACTION } from ${JSON.stringify(here('./log-redaction.ts'))};`,
      'const sink = createLineSink(NO_REDACTION, (line) => process.stdout.write(line + "\\n"));',
      'await runProcess({ command: "/bin/sh", args: ["-c", "echo $$; exec sleep 600"],',
      `  cwd: ${JSON.stringify(dir)}, env: { PATH: SYSTEM_PATH },`,
      '  signal: new AbortController().signal, stdout: sink, stderr: sink });',
    ].join('\n'),
  );
  const owner = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: owner.stdout! });
  const [first] = (await once(lines, 'line')) as [string];
  return { owner, buildPid: Number(first) };
}

test('build processes of a killed Switchyard process are ended by the next one', async () => {
  const { owner, buildPid } = await startOwner();
  assert.ok(Number.isInteger(buildPid) && buildPid > 1);
  owner.kill('SIGKILL');
  await once(owner, 'exit');
  // The build step runs in its own process group: its parent's death does not end it.
  assert.equal(await isProcessAlive(buildPid), true);

  assert.ok((await reapOrphanedBuilds(quiet, 2_000)) >= 1);
  await waitFor(async () => !(await isProcessAlive(buildPid)), 5_000);
});

test('build processes of a live Switchyard process are left alone', async () => {
  const { owner, buildPid } = await startOwner();
  try {
    await reapOrphanedBuilds(quiet, 2_000);
    assert.equal(await isProcessAlive(buildPid), true);
  } finally {
    owner.kill('SIGKILL');
    await once(owner, 'exit');
    await reapOrphanedBuilds(quiet, 2_000);
  }
  assert.equal(await isProcessAlive(buildPid), false);
});
