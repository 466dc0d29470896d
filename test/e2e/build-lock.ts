import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Test files run in parallel processes; two of them building dist/ at once would let one
// start a server while the other rewrites the files it imports. One builds, the others wait.

const WAIT_STEP_MS = 200;
// A lock older than this was left by a crashed run (when its holder's pid cannot be read).
const STALE_LOCK_MS = 10 * 60_000;
const OWNER_FILE = 'pid';

/** Runs `work` while holding a lock shared by every process testing the tree at `root`. */
export function withBuildLock(root: string, work: () => void): void {
  const digest = createHash('sha256').update(root).digest('hex').slice(0, 16);
  const lock = join(tmpdir(), `switchyard-build-${digest}.lock`);
  const deadline = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, OWNER_FILE), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (isStale(lock) || Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, WAIT_STEP_MS);
    }
  }
  try {
    work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Left by a process that is gone (killed while building), or older than any build takes. */
function isStale(lock: string): boolean {
  try {
    if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) return true;
    const owner = Number(readFileSync(join(lock, OWNER_FILE), 'utf8'));
    if (!Number.isInteger(owner) || owner <= 0) return false;
    process.kill(owner, 0);
    return false;
  } catch (error) {
    // ESRCH: the holder is gone. A missing pid file: the holder is between mkdir and write.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
