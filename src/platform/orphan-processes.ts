import fs from 'node:fs/promises';

/**
 * Finding and ending processes a previous Switchyard process left behind. Processes are
 * recognised by a variable Switchyard put in their environment (inherited by everything they
 * spawn), never by a pid alone, since pids are reused. Linux only: without /proc nothing is
 * found and callers say so.
 */

const POLL_MS = 50;

/**
 * Every other process whose environment has `name`, with the variable's value; undefined
 * when /proc cannot be read. Processes of other users are skipped (their environ is unreadable).
 */
export async function findProcessesByEnv(name: string): Promise<Map<number, string> | undefined> {
  const entries = await fs.readdir('/proc').catch(() => undefined);
  if (!entries) return undefined;
  const prefix = `${name}=`;
  const found = new Map<number, string>();
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    const variable = environ.split('\0').find((v) => v.startsWith(prefix));
    if (variable !== undefined) found.set(pid, variable.slice(prefix.length));
  }
  return found;
}

/** SIGTERM, then SIGKILL for whatever is still alive after `graceMs`. */
export async function terminateProcesses(pids: readonly number[], graceMs: number): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let alive = [...pids];
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    alive = await filterAlive(alive);
  }
  for (const pid of alive) signal(pid, 'SIGKILL');
}

/**
 * A name for one run of a process that no later process shares: its pid and its start time
 * in clock ticks since boot (field 22 of /proc/<pid>/stat). Undefined without /proc.
 */
export async function processIdentity(pid: number): Promise<string | undefined> {
  const fields = await statFields(pid);
  if (fields === undefined || fields.state === 'Z') return undefined;
  return `${pid}.${fields.startTime}`;
}

/** Whether the process run that `processIdentity` named is still running. */
export async function isProcessRunning(identity: string): Promise<boolean> {
  const pid = Number(identity.split('.')[0]);
  if (!Number.isInteger(pid) || pid <= 1) return false;
  return (await processIdentity(pid)) === identity;
}

async function filterAlive(pids: number[]): Promise<number[]> {
  const alive: number[] = [];
  for (const pid of pids) {
    // A zombie has exited; only its parent's wait() is missing.
    const fields = await statFields(pid);
    if (fields !== undefined && fields.state !== 'Z') alive.push(pid);
  }
  return alive;
}

async function statFields(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The command name (field 2) is in parentheses and may hold spaces: split after its end.
  const end = stat.lastIndexOf(')');
  if (end < 0) return undefined;
  const rest = stat.slice(end + 2).split(' ');
  // rest[0] is field 3 (state); field 22 (start time) is rest[19].
  const startTime = rest[19];
  if (rest[0] === undefined || startTime === undefined) return undefined;
  return { state: rest[0], startTime };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already, or not ours to signal: either way nothing more to do.
  }
}
