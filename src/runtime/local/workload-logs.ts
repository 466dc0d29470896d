import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

import type { LogLine } from '../runtime.js';

const READ_CHUNK_BYTES = 64 * 1024;
const MAX_READ_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Appends one deployment's output to its NDJSON log file, in order, and announces each
 * write so followers read it at once.
 *
 * TODO: cap or rotate log files — a chatty workload grows its file without bound; needs a
 * retention setting the config module does not have yet.
 */
export class WorkloadLogWriter {
  readonly #file: string;
  readonly #announce: () => void;
  #pending: string[] = [];
  #draining: Promise<void> | undefined;

  constructor(file: string, announce: () => void) {
    this.#file = file;
    this.#announce = announce;
  }

  append(line: LogLine): void {
    this.#pending.push(`${JSON.stringify(line)}\n`);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /** Resolves when every line appended so far is in the file. */
  async flush(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const chunk = this.#pending.join('');
      this.#pending = [];
      // A failed write loses those lines only; the workload keeps running.
      await fs.appendFile(this.#file, chunk, { mode: 0o600 }).catch(() => undefined);
      this.#announce();
    }
  }
}

/** Per-deployment "the log grew" notices, shared by the writers and the followers. */
export class LogAnnouncer {
  readonly #events = new EventEmitter();

  constructor() {
    this.#events.setMaxListeners(0);
  }

  announce(deploymentId: string): void {
    this.#events.emit(deploymentId);
  }

  subscribe(deploymentId: string, listener: () => void): () => void {
    this.#events.on(deploymentId, listener);
    return () => this.#events.off(deploymentId, listener);
  }
}

export interface ReadLogOptions {
  follow: boolean;
  signal: AbortSignal;
  tail?: number;
  /** Subscribes to growth notices; a poll covers writers in other processes. */
  subscribe: (listener: () => void) => () => void;
  pollMs?: number;
}

/** Past lines of an NDJSON log (the last `tail` when given), then new ones while following. */
export async function* readLog(file: string, options: ReadLogOptions): AsyncGenerator<LogLine> {
  let offset = options.tail === undefined ? 0 : await tailOffset(file, options.tail);
  for (;;) {
    const batch = await readCompleteLines(file, offset);
    offset = batch.nextOffset;
    for (const line of batch.lines) yield line;
    if (options.signal.aborted) return;
    if (batch.hasMore) continue;

    if (!options.follow) return;
    await waitForGrowth(options);
    if (options.signal.aborted) return;
  }
}

function waitForGrowth(options: ReadLogOptions): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      unsubscribe();
      options.signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, options.pollMs ?? 500);
    const unsubscribe = options.subscribe(done);
    options.signal.addEventListener('abort', done);
  });
}

interface LineBatch {
  lines: LogLine[];
  nextOffset: number;
  hasMore: boolean;
}

/** Reads whole lines from `offset`; a trailing partial line waits for the next read. */
async function readCompleteLines(file: string, offset: number): Promise<LineBatch> {
  const handle = await openIfExists(file);
  if (!handle) return { lines: [], nextOffset: offset, hasMore: false };
  try {
    const { size } = await handle.stat();
    const start = size < offset ? 0 : offset; // a smaller file was replaced: start over
    const buffer = Buffer.alloc(Math.min(size - start, MAX_READ_BYTES));
    await handle.read(buffer, 0, buffer.length, start);

    const isChunkFull = buffer.length === MAX_READ_BYTES;
    // A full chunk without any newline cannot come from our writer; skip past it.
    const end = isChunkFull
      ? buffer.lastIndexOf(NEWLINE) + 1 || buffer.length
      : buffer.lastIndexOf(NEWLINE) + 1;
    const nextOffset = start + end;
    return {
      lines: parseLines(buffer.subarray(0, end)),
      nextOffset,
      hasMore: nextOffset < size && isChunkFull,
    };
  } finally {
    await handle.close();
  }
}

function parseLines(buffer: Buffer): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of buffer.toString('utf8').split('\n')) {
    if (text === '') continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // A line torn by a crash mid-write is skipped rather than ending the stream.
    }
  }
  return lines;
}

/** The byte offset where the last `count` complete lines begin. */
async function tailOffset(file: string, count: number): Promise<number> {
  if (count <= 0) return (await fs.stat(file).catch(() => undefined))?.size ?? 0;
  const handle = await openIfExists(file);
  if (!handle) return 0;
  try {
    const { size } = await handle.stat();
    let position = size;
    let newlines = 0;
    while (position > 0) {
      const length = Math.min(READ_CHUNK_BYTES, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      await handle.read(chunk, 0, length, position);
      for (let index = length - 1; index >= 0; index--) {
        if (chunk[index] !== NEWLINE) continue;
        // The newline ending the last line does not start a line; count the others.
        if (position + index === size - 1) continue;
        newlines++;
        if (newlines === count) return position + index + 1;
      }
    }
    return 0;
  } finally {
    await handle.close();
  }
}

async function openIfExists(file: string): Promise<FileHandle | undefined> {
  try {
    return await fs.open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function logFilePath(stateDir: string, deploymentId: string): string {
  return path.join(stateDir, 'logs', `${deploymentId}.log`);
}
