import { sql } from 'kysely';
import type { Db } from './db/transaction.js';

/**
 * Takes or renews the named lease for `holder`. Succeeds when the lease is free, expired, or
 * already held by `holder`; returns whether `holder` holds it afterwards.
 */
export async function acquireLease(
  db: Db,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  const row = await db
    .insertInto('leases')
    .values({ name, holder, expires_at: sql`now() + ${ttlMs} * interval '1 millisecond'` })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet({
          holder,
          expires_at: sql`now() + ${ttlMs} * interval '1 millisecond'`,
          acquired_at: sql`CASE WHEN leases.holder = ${holder} THEN leases.acquired_at ELSE now() END`,
        })
        .where((eb) =>
          eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<', sql<Date>`now()`)]),
        ),
    )
    .returning('holder')
    .executeTakeFirst();
  return row?.holder === holder;
}

export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
}

export async function findLeaseHolder(db: Db, name: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('leases')
    .select('holder')
    .where('name', '=', name)
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row?.holder;
}

export async function beat(
  db: Db,
  worker: { id: string; hostname: string; pid: number; role: 'all' | 'api' | 'worker' },
): Promise<void> {
  await db
    .insertInto('worker_heartbeats')
    .values({ id: worker.id, hostname: worker.hostname, pid: worker.pid, role: worker.role })
    .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: sql`now()` }))
    .execute();
}

export async function removeWorker(db: Db, id: string): Promise<void> {
  await db.deleteFrom('worker_heartbeats').where('id', '=', id).execute();
}

/** Forgets workers silent for longer than `staleMs`; returns how many. */
export async function pruneWorkers(db: Db, staleMs: number): Promise<number> {
  const result = await db
    .deleteFrom('worker_heartbeats')
    .where('heartbeat_at', '<', sql<Date>`now() - ${staleMs} * interval '1 millisecond'`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Running builds and in-progress deployments whose worker stopped beating. */
export async function listOrphanedWork(db: Db, staleMs: number) {
  const isOrphaned = (table: 'builds' | 'deployments') =>
    sql<boolean>`NOT EXISTS (SELECT 1 FROM worker_heartbeats w WHERE w.id = ${sql.ref(`${table}.worker_id`)} AND w.heartbeat_at > now() - ${staleMs} * interval '1 millisecond')`;
  const builds = await db
    .selectFrom('builds')
    .select('id')
    .where('status', '=', 'running')
    .where(isOrphaned('builds'))
    .execute();
  const deployments = await db
    .selectFrom('deployments')
    .select('id')
    .where('status', '=', 'in_progress')
    .where(isOrphaned('deployments'))
    .execute();
  return { buildIds: builds.map((row) => row.id), deploymentIds: deployments.map((row) => row.id) };
}
