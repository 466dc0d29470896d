import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { AuditRecord } from './audit-event.js';

/**
 * The spool: events the database could not take yet, one JSON line each, appended and synced
 * to disk before `append` returns. Replay reads from a saved offset in order; the offset is
 * saved after the events are stored, so a crash in between replays them again, and the chain
 * (which skips an id it has) keeps that exactly-once. A line torn by a crash mid-append is cut
 * off when the spool is opened: its events were never reported as safe.
 *
 * One process owns a spool file; a lock file holding its pid keeps a second one out while the
 * first is alive, and lets the next start take over the spool of a process that died.
 */
export class AuditSpool {
  private offset: number;
  private size: number;
  private pending: number;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly lockPath: string,
  ) {
    this.size = fstatSync(fd).size;
    this.offset = 0;
    this.pending = 0;
  }

  /** Opens (or creates) the spool at `path`; throws when a live process holds it. */
  static open(path: string): AuditSpool {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const lockPath = `${path}.lock`;
    takeLock(lockPath);
    const fd = openSync(path, 'a+', 0o600);
    const spool = new AuditSpool(path, fd, lockPath);
    spool.cutTornTail();
    spool.offset = spool.readOffset();
    spool.pending = spool.countLines(spool.offset);
    return spool;
  }

  /** Events written and not yet replayed. */
  get depth(): number {
    return this.pending;
  }

  /** Appends the events in order and syncs them to disk. */
  append(records: readonly AuditRecord[]): void {
    if (records.length === 0) return;
    const text = records.map((record) => `${JSON.stringify(record)}\n`).join('');
    const bytes = Buffer.from(text, 'utf8');
    let written = 0;
    while (written < bytes.length)
      written += writeSync(this.fd, bytes, written, bytes.length - written);
    fdatasyncSync(this.fd);
    this.size += bytes.length;
    this.pending += records.length;
  }

  /**
   * The oldest events not yet replayed, at most `max`, and the position after them. Lines
   * that do not parse are returned in `unreadable` (counted, then passed over).
   */
  peek(max: number): { records: AuditRecord[]; end: number; unreadable: number } {
    const records: AuditRecord[] = [];
    let unreadable = 0;
    let position = this.offset;
    const chunkBytes = 1 << 20;
    while (records.length < max && position < this.size) {
      const length = Math.min(chunkBytes, this.size - position);
      const buffer = Buffer.alloc(length);
      readSync(this.fd, buffer, 0, length, position);
      let start = 0;
      for (
        let newline = buffer.indexOf(10, start);
        newline !== -1 && records.length < max;
        newline = buffer.indexOf(10, start)
      ) {
        const line = buffer.subarray(start, newline).toString('utf8');
        const record = parseRecord(line);
        if (record === undefined) unreadable += 1;
        else records.push(record);
        start = newline + 1;
      }
      // A line longer than the chunk would stall us; events are bounded far below it.
      if (start === 0)
        throw new Error(`audit spool line at byte ${position} exceeds ${chunkBytes} bytes`);
      position += start;
    }
    return { records, end: position, unreadable };
  }

  /** Marks everything before `end` (holding `count` lines) as stored; empties a drained spool. */
  advance(end: number, count: number): void {
    this.offset = end;
    this.pending = Math.max(0, this.pending - count);
    if (this.offset >= this.size) {
      ftruncateSync(this.fd, 0);
      this.size = 0;
      this.offset = 0;
      this.pending = 0;
    }
    this.writeOffset();
  }

  close(): void {
    closeSync(this.fd);
    try {
      unlinkSync(this.lockPath);
    } catch {
      // Already gone: nothing to release.
    }
  }

  private cutTornTail(): void {
    if (this.size === 0) return;
    const tailBytes = Math.min(this.size, 1 << 20);
    const tail = Buffer.alloc(tailBytes);
    readSync(this.fd, tail, 0, tailBytes, this.size - tailBytes);
    if (tail[tailBytes - 1] === 10) return;
    const lastNewline = tail.lastIndexOf(10);
    const keep =
      lastNewline === -1 ? this.size - tailBytes : this.size - tailBytes + lastNewline + 1;
    ftruncateSync(this.fd, keep);
    fdatasyncSync(this.fd);
    this.size = keep;
  }

  private readOffset(): number {
    try {
      const value = Number(readFileSync(`${this.path}.offset`, 'utf8').trim());
      return Number.isSafeInteger(value) && value >= 0 && value <= this.size ? value : 0;
    } catch {
      return 0;
    }
  }

  private writeOffset(): void {
    const temp = `${this.path}.offset.tmp`;
    writeFileSync(temp, String(this.offset), { mode: 0o600 });
    renameSync(temp, `${this.path}.offset`);
  }

  private countLines(from: number): number {
    let count = 0;
    const buffer = Buffer.alloc(1 << 20);
    for (let position = from; position < this.size;) {
      const read = readSync(
        this.fd,
        buffer,
        0,
        Math.min(buffer.length, this.size - position),
        position,
      );
      if (read === 0) break;
      for (
        let index = buffer.indexOf(10, 0);
        index !== -1 && index < read;
        index = buffer.indexOf(10, index + 1)
      )
        count++;
      position += read;
    }
    return count;
  }
}

function parseRecord(line: string): AuditRecord | undefined {
  try {
    const value = JSON.parse(line) as Partial<AuditRecord> | null;
    const isRecord =
      typeof value === 'object' &&
      value !== null &&
      typeof value.id === 'string' &&
      typeof value.occurredAt === 'string' &&
      typeof value.action === 'string' &&
      typeof value.contentHash === 'string';
    return isRecord ? (value as AuditRecord) : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock file, or throws when another live process holds it. */
function takeLock(lockPath: string): void {
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx', mode: 0o600 });
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const holder = Number(readFileSync(lockPath, 'utf8').trim());
  if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    throw new Error(
      `the audit spool ${lockPath.replace(/\.lock$/, '')} is in use by process ${holder}`,
    );
  }
  writeFileSync(lockPath, String(process.pid), { mode: 0o600 });
}
