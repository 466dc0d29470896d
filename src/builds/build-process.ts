import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  findProcessesByEnv,
  isProcessRunning,
  processIdentity,
  terminateProcesses,
} from '../platform/orphan-processes.js';
import { spawnUser, type RunAs } from '../platform/workload-users.js';
import type { LineSink } from './log-redaction.js';

/** How long a process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 5_000;

/**
 * Put in the environment of every build process (and so of everything it spawns): which run
 * of which Switchyard process started it, so that a later process can find and end the build
 * processes of one that was killed before it could (`reapOrphanedBuilds`).
 */
export const BUILD_OWNER_MARKER = 'SWITCHYARD_BUILD_OWNER';

let ownIdentity: Promise<string | undefined> | undefined;

/** How long to wait for output pipes after the process exits (a stray child may hold them). */
const PIPE_DRAIN_MS = 2_000;

/**
 * The PATH every build process gets: the folder of the running Node.js (so `node` and `npm`
 * match Switchyard's own) and the system folders. Nothing else from Switchyard's environment.
 */
export const SYSTEM_PATH = [
  ...new Set([dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin']),
].join(':');

export interface ProcessSpec {
  command: string;
  args: readonly string[];
  cwd: string;
  /** The whole environment of the process; nothing is inherited. */
  env: Record<string, string>;
  /** The user the process runs as (the project's workload user); absent, Switchyard's own. */
  runAs?: RunAs | undefined;
  /** Aborting kills the process group; the run then rejects with `signal.reason`. */
  signal: AbortSignal;
  stdout: LineSink;
  stderr: LineSink;
  killGraceMs?: number;
}

export interface ProcessExit {
  exitCode: number | null;
  signalName: NodeJS.Signals | null;
}

/**
 * Runs one process, never through a shell, in its own process group so that it and everything
 * it starts can be killed together. Resolves when it has exited and its output is drained;
 * rejects when it cannot be started or when the signal aborts.
 */
export async function runProcess(spec: ProcessSpec): Promise<ProcessExit> {
  spec.signal.throwIfAborted();
  ownIdentity ??= processIdentity(process.pid);
  const owner = await ownIdentity;
  const env = owner === undefined ? spec.env : { ...spec.env, [BUILD_OWNER_MARKER]: owner };

  return new Promise((resolve, reject) => {
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env,
      ...spawnUser(spec.runAs),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timers: NodeJS.Timeout[] = [];
    let isSettled = false;

    const settle = (finish: () => void) => {
      if (isSettled) return;
      isSettled = true;
      timers.forEach(clearTimeout);
      spec.signal.removeEventListener('abort', onAbort);
      spec.stdout.end();
      spec.stderr.end();
      finish();
    };

    function onAbort() {
      killGroup(child.pid, 'SIGTERM');
      timers.push(
        setTimeout(() => killGroup(child.pid, 'SIGKILL'), spec.killGraceMs ?? KILL_GRACE_MS),
      );
    }
    spec.signal.addEventListener('abort', onAbort, { once: true });

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => spec.stdout.write(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => spec.stderr.write(chunk));

    child.once('error', (error) => settle(() => reject(error)));
    child.once('exit', () => {
      // The step is over: whatever it left running in its group goes with it.
      killGroup(child.pid, 'SIGKILL');
      const drain = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, PIPE_DRAIN_MS);
      timers.push(drain);
    });
    child.once('close', (exitCode, signalName) => {
      settle(() =>
        spec.signal.aborted ? reject(spec.signal.reason) : resolve({ exitCode, signalName }),
      );
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone (ESRCH), which is what was wanted.
  }
}

/**
 * Ends build processes whose Switchyard process is gone (killed with SIGKILL, or crashed):
 * their process groups survive their parent. Builds of live processes, this one's and other
 * replicas' on the same machine, are left alone. Returns how many processes were ended.
 */
export async function reapOrphanedBuilds(logger: Logger, graceMs = KILL_GRACE_MS): Promise<number> {
  const marked = await findProcessesByEnv(BUILD_OWNER_MARKER);
  if (marked === undefined) return 0;
  const byOwner = new Map<string, number[]>();
  for (const [pid, owner] of marked) byOwner.set(owner, [...(byOwner.get(owner) ?? []), pid]);
  const orphans: number[] = [];
  for (const [owner, pids] of byOwner) {
    if (await isProcessRunning(owner)) continue;
    logger.warn({ ownerPid: Number(owner.split('.')[0]), pids }, 'orphaned build processes ended');
    orphans.push(...pids);
  }
  if (orphans.length > 0) await terminateProcesses(orphans, graceMs);
  return orphans.length;
}
