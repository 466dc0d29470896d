import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

import type { LogLine } from '../runtime.js';

const READ_CHUNK_BYTES = 64 * 1024;
const MAX_READ_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/** Where a log's previous part goes when it rotates: one part is kept. */
export function previousPart(file: string): string {
  return `${file}.1`;
}

/**
 * Appends one deployment's output to its NDJSON log file, in order, and announces each
 * write so followers read it at once. A file that would pass `maxBytes` is first renamed to
 * its previous part (replacing the one before), so a deployment's logs take at most twice
 * `maxBytes` on disk.
 */
export class WorkloadLogWriter {
  readonly #file: string;
  readonly #announce: () => void;
  readonly #maxBytes: number;
  #size: number | undefined;
  #pending: string[] = [];
  #draining: Promise<void> | undefined;

  constructor(file: string, announce: () => void, maxBytes = Number.POSITIVE_INFINITY) {
    this.#file = file;
    this.#announce = announce;
    this.#maxBytes = maxBytes;
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
    this.#size ??= (await fs.stat(this.#file).catch(() => undefined))?.size ?? 0;
    while (this.#pending.length > 0) {
      const chunk = this.#pending.join('');
      this.#pending = [];
      const bytes = Buffer.byteLength(chunk);
      if (this.#size > 0 && this.#size + bytes > this.#maxBytes) await this.#rotate();
      // A failed write loses those lines only; the workload keeps running.
      await fs.appendFile(this.#file, chunk, { mode: 0o600 }).then(
        () => (this.#size = (this.#size ?? 0) + bytes),
        () => undefined,
      );
      this.#announce();
    }
  }

  async #rotate(): Promise<void> {
    try {
      await fs.rename(this.#file, previousPart(this.#file));
      this.#size = 0;
    } catch {
      // Keep appending to the current file; the next write tries again.
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

/**
 * Past lines of an NDJSON log (the last `tail` when given, reaching into the previous part when
 * the current one holds fewer), then new ones while following. A follower whose file was
 * rotated reads what it had not yet read from the previous part, then the new file from its
 * start.
 */
export async function* readLog(file: string, options: ReadLogOptions): AsyncGenerator<LogLine> {
  let position: Position = { offset: 0, ino: undefined };
  if (options.tail !== undefined) {
    const current = await tailOffset(file, options.tail);
    const missing = options.tail - current.lines;
    if (missing > 0 && current.offset === 0) {
      yield* readAll(previousPart(file), (await tailOffset(previousPart(file), missing)).offset);
    }
    position = { offset: current.offset, ino: current.ino };
  }
  for (;;) {
    const batch = await readCompleteLines(file, position);
    if (batch.rotated !== undefined) {
      yield* readAll(previousPart(file), batch.rotated.offset, batch.rotated.ino);
    }
    position = batch.next;
    for (const line of batch.lines) yield line;
    if (options.signal.aborted) return;
    if (batch.hasMore) continue;

    if (!options.follow) return;
    await waitForGrowth(options);
    if (options.signal.aborted) return;
  }
}

/** Every complete line of `file` from `offset`; nothing when it is not the file `ino` names. */
async function* readAll(file: string, offset: number, ino?: number): AsyncGenerator<LogLine> {
  let position: Position = { offset, ino };
  for (;;) {
    const batch = await readCompleteLines(file, position);
    if (batch.rotated !== undefined) return;
    position = batch.next;
    yield* batch.lines;
    if (!batch.hasMore) return;
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

/** How far a reader got, in which file (its inode: a rotated log is a new file). */
interface Position {
  offset: number;
  ino: number | undefined;
}

interface LineBatch {
  lines: LogLine[];
  next: Position;
  hasMore: boolean;
  /** Set when the file is no longer the one `Position` named: where that one was left. */
  rotated?: { offset: number; ino: number | undefined };
}

/** Reads whole lines from the position; a trailing partial line waits for the next read. */
async function readCompleteLines(file: string, from: Position): Promise<LineBatch> {
  const handle = await openIfExists(file);
  if (!handle) return { lines: [], next: from, hasMore: false };
  try {
    const { size, ino } = await handle.stat();
    const isReplaced = from.ino !== undefined && from.ino !== ino;
    // A different or a shorter file than the one read so far: start it from the beginning.
    const start = isReplaced || size < from.offset ? 0 : from.offset;
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
      next: { offset: nextOffset, ino },
      hasMore: nextOffset < size && isChunkFull,
      ...(isReplaced ? { rotated: { offset: from.offset, ino: from.ino } } : {}),
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

/**
 * Where the last `count` complete lines begin, how many lines that is (fewer when the file
 * holds fewer) and the file's inode.
 */
async function tailOffset(
  file: string,
  count: number,
): Promise<{ offset: number; lines: number; ino: number | undefined }> {
  const handle = await openIfExists(file);
  if (!handle) return { offset: 0, lines: 0, ino: undefined };
  try {
    const { size, ino } = await handle.stat();
    if (count <= 0) return { offset: size, lines: 0, ino };
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
        if (newlines === count) return { offset: position + index + 1, lines: count, ino };
      }
    }
    return { offset: 0, lines: size === 0 ? 0 : newlines + 1, ino };
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
