import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

import { findProcessesByEnv, terminateProcesses } from '../../platform/orphan-processes.js';
import { INSTANCE_MARKER } from './child-env.js';

/** What the runtime records, per instance, to find its processes after a crash of its own. */
export interface PidRecord {
  instanceId: string;
  deploymentId: string;
  pid: number;
}

export function pidDirectory(stateDir: string): string {
  return path.join(stateDir, 'pids');
}

export async function writePidFile(dir: string, record: PidRecord): Promise<void> {
  const file = path.join(dir, `${record.instanceId}.json`);
  // Write then rename, so a crash never leaves half a record behind.
  await fs.writeFile(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 });
  await fs.rename(`${file}.tmp`, file);
}

export async function removePidFile(dir: string, instanceId: string): Promise<void> {
  await fs.rm(path.join(dir, `${instanceId}.json`), { force: true });
}

/** Records of instances this process does not run, and every file that holds them. */
async function readForeignRecords(
  dir: string,
  liveInstanceIds: ReadonlySet<string>,
): Promise<{ records: PidRecord[]; files: string[] }> {
  const names = await fs.readdir(dir).catch(() => []);
  const records: PidRecord[] = [];
  const files: string[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const record = parseRecord(await fs.readFile(file, 'utf8').catch(() => ''));
    if (record && liveInstanceIds.has(record.instanceId)) continue;
    if (record) records.push(record);
    files.push(file);
  }
  return { records, files };
}

function parseRecord(text: string): PidRecord | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const { instanceId, deploymentId, pid } = value as Record<string, unknown>;
    if (typeof instanceId !== 'string' || typeof deploymentId !== 'string') return undefined;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) return undefined;
    return { instanceId, deploymentId, pid };
  } catch {
    return undefined;
  }
}

/**
 * Kills what a previous Switchyard process left running: every process whose environment
 * carries the marker of an instance named in a pid file (the instance and anything it
 * spawned). A pid alone proves nothing, since pids are reused, so without /proc to read
 * environments nothing is killed and a warning names the pids instead. Removes the files,
 * except those of instances this process runs (`liveInstanceIds`).
 */
export async function reapOrphans(
  dir: string,
  liveInstanceIds: ReadonlySet<string>,
  logger: Logger,
  graceMs: number,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const { records, files } = await readForeignRecords(dir, liveInstanceIds);
  if (records.length > 0) {
    const orphans = await findMarkedProcesses(records);
    if (orphans === undefined) {
      logger.warn({ pids: records.map((r) => r.pid) }, 'orphan check unavailable without /proc');
    } else if (orphans.size > 0) {
      await terminate(orphans, graceMs, logger);
    }
  }
  await Promise.all(files.map((file) => fs.rm(file, { force: true })));
}

/** Pids carrying one of the records' markers, with their record; undefined without /proc. */
async function findMarkedProcesses(
  records: PidRecord[],
): Promise<Map<number, PidRecord> | undefined> {
  const marked = await findProcessesByEnv(INSTANCE_MARKER);
  if (marked === undefined) return undefined;
  const byInstance = new Map(records.map((r) => [r.instanceId, r]));
  const found = new Map<number, PidRecord>();
  for (const [pid, instanceId] of marked) {
    const record = byInstance.get(instanceId);
    if (record) found.set(pid, record);
  }
  return found;
}

async function terminate(
  orphans: Map<number, PidRecord>,
  graceMs: number,
  logger: Logger,
): Promise<void> {
  for (const [pid, record] of orphans) {
    logger.info(
      { pid, instanceId: record.instanceId, deploymentId: record.deploymentId },
      'orphan reaped',
    );
  }
  await terminateProcesses([...orphans.keys()], graceMs);
}
