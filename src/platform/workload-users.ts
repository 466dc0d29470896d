import { execFile } from 'node:child_process';
import { chown, mkdir, realpath, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

/**
 * Workload users: the operating-system users that builds and app instances run as, so that
 * they cannot read Switchyard's files, its environment or another project's processes. A
 * project's user is `uidBase + workload_slot` (its group has the same number; neither needs
 * an entry in /etc/passwd). Only a process running as root can switch to them.
 */

/** The user and group a process runs as. */
export interface RunAs {
  uid: number;
  gid: number;
}

export interface WorkloadIsolation {
  isolation: 'uid' | 'none';
  uidBase: number;
}

// (uid_t)-1 means "leave unchanged" to setuid and chown: the highest usable uid is one less.
const MAX_UID = 2 ** 32 - 2;

/** The user a project's builds and instances run as; undefined when isolation is off. */
export function workloadUserFor(settings: WorkloadIsolation, slot: number): RunAs | undefined {
  if (settings.isolation === 'none') return undefined;
  const uid = settings.uidBase + slot;
  if (!Number.isSafeInteger(slot) || slot < 1 || uid > MAX_UID) {
    throw new Error(`workload slot ${slot} is outside the uid range`);
  }
  return { uid, gid: uid };
}

/**
 * Creates a folder only `runAs` (or, without it, Switchyard) may enter, owned by that user.
 * Its parent must be Switchyard's, so that no workload can have put a link in its place.
 */
export async function makeWorkloadFolder(path: string, runAs: RunAs | undefined): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (runAs !== undefined) await chown(path, runAs.uid, runAs.gid);
}

/** Spawn options that switch a child to `runAs` (nothing when it is undefined). */
export function spawnUser(runAs: RunAs | undefined): { uid?: number; gid?: number } {
  return runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid };
}

/**
 * The first folder above `path` that other users cannot enter (no `o+x`), or undefined when
 * a workload user can pass through every one of them.
 */
export async function closedParent(path: string): Promise<string | undefined> {
  let folder = dirname(await realpath(path));
  for (;;) {
    if (((await stat(folder)).mode & 0o001) === 0) return folder;
    const parent = dirname(folder);
    if (parent === folder) return undefined;
    folder = parent;
  }
}

const execFileAsync = promisify(execFile);

/**
 * Removes a folder a workload user wrote in. Its contents are removed as that user, never
 * as root: a process of it that outlived the workload could swap a folder inside for a link
 * while root walks the tree, and root would then delete whatever the link points to. What is
 * left is removed only if empty. Without `runAs` the folder is simply removed.
 */
export async function removeWorkloadFolder(path: string, runAs: RunAs | undefined): Promise<void> {
  if (runAs === undefined) return rm(path, { recursive: true, force: true });
  await execFileAsync('rm', ['-rf', '--', path], {
    uid: runAs.uid,
    gid: runAs.gid,
    env: { PATH: '/usr/bin:/bin' },
  }).catch(() => undefined);
  await rmdir(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
