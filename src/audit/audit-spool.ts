import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { AuditRecord } from './audit-event.js';

// A lock file is refreshed this often; one not refreshed for LOCK_STALE_MS has no live holder.
// That is how a holder on another machine sharing the folder is judged; on this machine its
// pid is checked instead.
const LOCK_REFRESH_MS = 5_000;
const LOCK_STALE_MS = 30_000;

function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // The lock went away (the folder was cleaned up): nothing to refresh.
  }
}

/**
 * The spool: events the database could not take yet, one JSON line each, appended and synced
 * to disk before `append` returns. Replay reads from a saved offset in order; the offset is
 * saved after the events are stored, so a crash in between replays them again, and the chain
 * (which skips an id it has) keeps that exactly-once. A line torn by a crash mid-append is cut
 * off when the spool is opened: its events were never reported as safe.
 *
 * One process owns a spool file; a lock file naming its pid and machine keeps a second one out
 * while the first is alive, and lets another process take over the spool of one that died
 * (openOwnSpool).
 */
export class AuditSpool {
  private offset: number;
  private size: number;
  private pending: number;
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly lockPath: string,
  ) {
    this.size = fstatSync(fd).size;
    this.offset = 0;
    this.pending = 0;
    // Tells processes on other machines sharing the folder that the holder is alive.
    this.heartbeat = setInterval(() => touch(lockPath), LOCK_REFRESH_MS);
    this.heartbeat.unref();
  }

  /** Opens (or creates) the spool at `path`; throws when a live process holds it. */
  static open(path: string): AuditSpool {
    const spool = AuditSpool.tryOpen(path);
    if (spool === undefined) {
      const holder = readFileSync(`${path}.lock`, 'utf8').trim();
      throw new Error(`the audit spool ${path} is in use by process ${holder}`);
    }
    return spool;
  }

  /** Opens (or creates) the spool at `path`; undefined when a live process holds it. */
  static tryOpen(path: string): AuditSpool | undefined {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const lockPath = `${path}.lock`;
    if (!tryTakeLock(lockPath)) return undefined;
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
    clearInterval(this.heartbeat);
    closeSync(this.fd);
    heldHere.delete(this.lockPath);
    try {
      unlinkSync(this.lockPath);
    } catch {
      // Already gone: nothing to release.
    }
  }

  /** Closes the spool and deletes it with its offset; for a spool whose events moved elsewhere. */
  remove(): void {
    for (const file of [this.path, `${this.path}.offset`]) rmSync(file, { force: true });
    this.close();
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

/**
 * Whether a lock file names a live holder. A holder on this machine is alive while its process
 * is; one on another machine (replicas sharing a network folder) while it keeps refreshing the
 * file, every LOCK_REFRESH_MS.
 */
function isHeld(lockPath: string): boolean {
  let text: string;
  let modifiedMs: number;
  try {
    text = readFileSync(lockPath, 'utf8');
    modifiedMs = statSync(lockPath).mtimeMs;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  const [pidText = '', host = hostname()] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  // Our own pid names this very process only if it took the lock: a restarted container (its
  // process often pid 1 again, on the same hostname) must take over its predecessor's spool.
  if (host === hostname() && Number.isSafeInteger(pid) && pid > 0)
    return pid === process.pid ? heldHere.has(lockPath) : isAlive(pid);
  return Date.now() - modifiedMs < LOCK_STALE_MS;
}

/** Lock files this process holds. */
const heldHere = new Set<string>();

/**
 * Takes the lock file; false when a live holder has it. A stale lock is renamed away first, so
 * that of two processes taking it over at once only one succeeds.
 */
function tryTakeLock(lockPath: string): boolean {
  const holder = `${process.pid} ${hostname()}\n`;
  try {
    writeFileSync(lockPath, holder, { flag: 'wx', mode: 0o600 });
    heldHere.add(lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if (isHeld(lockPath)) return false;
  const stale = `${lockPath}.${process.pid}.stale`;
  try {
    renameSync(lockPath, stale);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  unlinkSync(stale);
  try {
    writeFileSync(lockPath, holder, { flag: 'wx', mode: 0o600 });
    heldHere.add(lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

const SPOOL_FILE = /^spool-.+\.ndjson$/;

/**
 * Opens this process's own spool in `dir`, so that processes sharing the folder never share a
 * spool: the first `spool-<role>-<n>.ndjson` no live process holds. Then every other spool in
 * `dir` that no live process holds (left by a process that is gone) is moved into it: its
 * events are appended to ours and synced, then its file is removed. A crash in between leaves
 * them in both; the chain skips an id it has, so each is still stored once.
 */
export function openOwnSpool(
  dir: string,
  role: string,
): { spool: AuditSpool; adopted: number; unreadable: number } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let spool: AuditSpool | undefined;
  for (let slot = 0; spool === undefined; slot++)
    spool = AuditSpool.tryOpen(join(dir, `spool-${role}-${slot}.ndjson`));
  let adopted = 0;
  let unreadable = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!SPOOL_FILE.test(name) || path === spool.path) continue;
    const left = AuditSpool.tryOpen(path);
    if (left === undefined) continue;
    for (;;) {
      const chunk = left.peek(1_000);
      if (chunk.records.length === 0 && chunk.unreadable === 0) break;
      spool.append(chunk.records);
      adopted += chunk.records.length;
      unreadable += chunk.unreadable;
      left.advance(chunk.end, chunk.records.length + chunk.unreadable);
    }
    left.remove();
  }
  return { spool, adopted, unreadable };
}
