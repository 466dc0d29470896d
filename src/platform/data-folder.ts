import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { closedParent } from './workload-users.js';

/**
 * The data folder holds the embedded database (pgdata/), keys, the audit spool, build
 * scratch (builds/), artifacts and the runtime's state: everything is Switchyard's alone.
 * Workloads that run as users of their own must still reach their artifact, HOME and build
 * folders, so with isolation on the data folder and those three may be entered but not
 * listed (0711); whatever each workload may read or write inside them has its own mode.
 */
const WORKLOAD_PATHS = new Set(['artifacts', 'builds', 'runtime']);

/**
 * Creates the data folder (and pgdata/ when embedded) owner-only, and takes group and
 * other permissions off whatever already sits at its top level, so an older install's
 * world-readable database folder is closed at the next start. Logs an error when
 * workload users could not reach the data folder through the folders above it.
 */
export async function prepareDataFolder(config: Readonly<Config>, logger: Logger): Promise<void> {
  const { dataDir } = config;
  const isIsolated = config.workloads.isolation === 'uid';
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, isIsolated ? 0o711 : 0o700);
  if (config.mode === 'embedded')
    await mkdir(join(dataDir, 'pgdata'), { mode: 0o700 }).catch(ignoreExists);

  for (const name of await readdir(dataDir)) {
    const path = join(dataDir, name);
    const info = await lstat(path);
    if (info.isSymbolicLink()) continue;
    const isTraversed = isIsolated && info.isDirectory() && WORKLOAD_PATHS.has(name);
    const mode = isTraversed ? 0o711 : info.mode & 0o700;
    if ((info.mode & 0o777) !== mode) {
      await chmod(path, mode);
      logger.info({ path, mode: mode.toString(8) }, 'data folder mode corrected');
    }
    // The database files inside: an older install left them world-readable (umask 022).
    if (name === 'pgdata' && info.isDirectory()) await closeTree(path);
  }
  const closed =
    isIsolated && config.process.role !== 'api' ? await closedParent(dataDir) : undefined;
  if (closed !== undefined) {
    // Builds then fail saying so; apps cannot start. Refusing to start would stop the API too.
    logger.error(
      { dataDir, folder: closed },
      'workload users cannot reach the data folder: a folder above it cannot be entered by other users; use a data folder such as /var/lib/switchyard, or set SWITCHYARD_WORKLOAD_ISOLATION=none',
    );
  }
}

function ignoreExists(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
}

/**
 * Says once, at start, how workloads are separated from Switchyard and from each other when
 * they are not: as Switchyard's own user they can read everything it can.
 */
export function warnWithoutIsolation(config: Readonly<Config>, logger: Logger): void {
  if (config.workloads.isolation === 'uid') return;
  const isRoot = process.getuid?.() === 0;
  logger.warn(
    { isolation: 'none', uid: process.getuid?.() },
    isRoot
      ? 'workload isolation is off: builds and apps run as root and can read every project and key'
      : 'not running as root, so workloads cannot get users of their own: builds and apps run as this user and can read everything it can (single-tenant, trusted deployers only)',
  );
}

/** Takes group and other permissions off everything under `folder` (links are left alone). */
async function closeTree(folder: string): Promise<void> {
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) continue;
    const path = join(folder, entry.name);
    const { mode } = await lstat(path);
    if ((mode & 0o077) !== 0) await chmod(path, mode & 0o7700);
    if (entry.isDirectory()) await closeTree(path);
  }
}
