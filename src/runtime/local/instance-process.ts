import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';

import { spawnUser } from '../../platform/workload-users.js';
import type { RunAs } from '../../platform/workload-users.js';

const MAX_LINE_CHARS = 64 * 1024;

export interface ProcessExit {
  exitCode: number | null;
  signal: string | null;
  /** Set when the process could not be spawned at all (missing command or folder). */
  error?: Error;
}

export interface SpawnInput {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** The user the process runs as; absent, Switchyard's own. */
  runAs?: RunAs | undefined;
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
}

/**
 * One spawned process, leader of its own process group so that signals reach everything it
 * starts. `exited` settles once, when the process ends or fails to spawn; `outputClosed`
 * once its output pipes are drained.
 */
export class InstanceProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ProcessExit>;
  readonly outputClosed: Promise<void>;
  readonly #child: ChildProcess;

  constructor(input: SpawnInput) {
    this.#child = spawn(input.command, input.args, {
      cwd: input.cwd,
      env: input.env,
      ...spawnUser(input.runAs),
      detached: true,
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.#child.pid;

    const child = this.#child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
      // Only a failed spawn emits 'error' here (nothing is sent to the child); the listener
      // stays so that a second one cannot crash Switchyard.
      child.on('error', (error) => resolve({ exitCode: null, signal: null, error }));
    });
    this.outputClosed = Promise.all([
      splitLines(child.stdout, (line) => input.onLine('stdout', line)),
      splitLines(child.stderr, (line) => input.onLine('stderr', line)),
    ]).then(() => undefined);
  }

  get isRunning(): boolean {
    return (
      this.pid !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
    );
  }

  /** Signals the whole process group; a group already gone (or not ours) is left alone. */
  signalGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: every member has exited. EPERM: a member changed user; nothing we may do.
    }
  }
}

/** Calls `onLine` per line of `stream`; resolves when the stream ends. */
function splitLines(stream: Readable | null, onLine: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  const decoder = new StringDecoder('utf8');
  let pending = '';

  const emit = (text: string): void => onLine(text.endsWith('\r') ? text.slice(0, -1) : text);
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      const parts = (pending + decoder.write(chunk)).split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) emit(part);
      // An endless line is cut rather than held in memory.
      while (pending.length > MAX_LINE_CHARS) {
        emit(pending.slice(0, MAX_LINE_CHARS));
        pending = pending.slice(MAX_LINE_CHARS);
      }
    });
    stream.once('close', () => {
      pending += decoder.end();
      if (pending !== '') emit(pending);
      resolve();
    });
  });
}
