import { sql } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import {
  auditDb,
  type AuditEventRow,
  type OutboxState,
  type SinkFormat,
  type SinkRow,
} from './audit.tables.js';

export interface NewSink {
  id: string;
  name: string;
  format: SinkFormat;
  url: string;
  targetId: string | null;
  maxAttempts: number;
  batchSize: number;
  sealed: { keyId: string; wrappedKey: Buffer; ciphertext: Buffer };
  createdBy: string;
}

/** Inserts a sink; undefined when the name is taken. */
export async function insertSink(db: Db, sink: NewSink): Promise<SinkRow | undefined> {
  return auditDb(db)
    .insertInto('audit_sinks')
    .values({
      id: sink.id,
      name: sink.name,
      format: sink.format,
      url: sink.url,
      target_id: sink.targetId,
      max_attempts: sink.maxAttempts,
      batch_size: sink.batchSize,
      credentials_key_id: sink.sealed.keyId,
      credentials_wrapped_key: sink.sealed.wrappedKey,
      credentials_ciphertext: sink.sealed.ciphertext,
      created_by: sink.createdBy,
    })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findSink(db: Db, id: string): Promise<SinkRow | undefined> {
  return auditDb(db).selectFrom('audit_sinks').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Sinks by name, a page at a time after `afterName`. */
export async function listSinks(
  db: Db,
  limit: number,
  afterName: string | undefined,
): Promise<SinkRow[]> {
  let query = auditDb(db).selectFrom('audit_sinks').selectAll();
  if (afterName !== undefined) query = query.where('name', '>', afterName);
  return query
    .orderBy('name', 'asc')
    .limit(limit + 1)
    .execute();
}

export async function listActiveSinkIds(db: Db): Promise<string[]> {
  const rows = await auditDb(db)
    .selectFrom('audit_sinks')
    .select('id')
    .where('status', '=', 'active')
    .execute();
  return rows.map((row) => row.id);
}

export async function deleteSink(db: Db, id: string): Promise<boolean> {
  const result = await auditDb(db)
    .deleteFrom('audit_sinks')
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function setSinkStatus(
  db: Db,
  id: string,
  status: 'active' | 'paused',
): Promise<SinkRow | undefined> {
  return auditDb(db)
    .updateTable('audit_sinks')
    .set({ status, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Outbox rows of a sink by state. */
export async function countOutbox(db: Db, sinkId: string): Promise<Record<OutboxState, number>> {
  const rows = await auditDb(db)
    .selectFrom('audit_outbox')
    .select(['state', sql<number>`count(*)::int`.as('count')])
    .where('sink_id', '=', sinkId)
    .groupBy('state')
    .execute();
  const counts: Record<OutboxState, number> = { pending: 0, delivered: 0, dead: 0 };
  for (const row of rows) counts[row.state] = Number(row.count);
  return counts;
}

/**
 * Takes (or renews) the right to deliver for a sink until `ms` from now; false when another
 * process holds an unexpired lease. One deliverer per sink keeps its events in order.
 */
export async function takeLease(
  db: Db,
  sinkId: string,
  owner: string,
  ms: number,
): Promise<SinkRow | undefined> {
  return auditDb(db)
    .updateTable('audit_sinks')
    .set({ lease_owner: owner, lease_until: sql<Date>`now() + ${`${ms} milliseconds`}::interval` })
    .where('id', '=', sinkId)
    .where('status', '=', 'active')
    .where((eb) =>
      eb.or([
        eb('lease_until', 'is', null),
        eb('lease_until', '<', sql<Date>`now()`),
        eb('lease_owner', '=', owner),
      ]),
    )
    .returningAll()
    .executeTakeFirst();
}

export async function releaseLease(db: Db, sinkId: string, owner: string): Promise<void> {
  await auditDb(db)
    .updateTable('audit_sinks')
    .set({ lease_owner: null, lease_until: null })
    .where('id', '=', sinkId)
    .where('lease_owner', '=', owner)
    .execute();
}

export type PendingDelivery = AuditEventRow & { attempts: number; next_attempt_at: Date };

/** The oldest pending events of a sink, in chain order, with their delivery state. */
export async function listPending(
  db: Db,
  sinkId: string,
  limit: number,
): Promise<PendingDelivery[]> {
  return auditDb(db)
    .selectFrom('audit_outbox as o')
    .innerJoin('audit_events as e', 'e.seq', 'o.event_seq')
    .selectAll('e')
    .select(['o.attempts', 'o.next_attempt_at'])
    .where('o.sink_id', '=', sinkId)
    .where('o.state', '=', 'pending')
    .orderBy('o.event_seq', 'asc')
    .limit(limit)
    .execute();
}

export async function markDelivered(
  db: Db,
  sinkId: string,
  seqs: readonly number[],
): Promise<void> {
  await auditDb(db)
    .updateTable('audit_outbox')
    .set((eb) => ({
      state: 'delivered',
      delivered_at: new Date(),
      attempts: eb('attempts', '+', 1),
      last_error: null,
    }))
    .where('sink_id', '=', sinkId)
    .where('event_seq', 'in', seqs)
    .execute();
}

/**
 * Records a failed attempt: the events wait until `nextAttemptAt`, or become dead when this
 * was their last attempt (or `isFinal`, for answers no retry will change).
 */
export async function markFailed(
  db: Db,
  sinkId: string,
  seqs: readonly number[],
  failure: { error: string; nextAttemptAt: Date; maxAttempts: number; isFinal: boolean },
): Promise<number> {
  const rows = await auditDb(db)
    .updateTable('audit_outbox')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      last_error: failure.error.slice(0, 500),
      next_attempt_at: failure.nextAttemptAt,
      state: failure.isFinal
        ? sql<OutboxState>`'dead'`
        : sql<OutboxState>`case when attempts + 1 >= ${failure.maxAttempts} then 'dead' else 'pending' end`,
    }))
    .where('sink_id', '=', sinkId)
    .where('event_seq', 'in', seqs)
    .returning('state')
    .execute();
  return rows.filter((row) => row.state === 'dead').length;
}

/** Puts dead events (all of them, or those listed) back in line; returns how many. */
export async function redeliver(
  db: Db,
  sinkId: string,
  seqs: readonly number[] | undefined,
): Promise<number> {
  let query = auditDb(db)
    .updateTable('audit_outbox')
    .set({ state: 'pending', attempts: 0, next_attempt_at: new Date(), last_error: null })
    .where('sink_id', '=', sinkId)
    .where('state', '=', 'dead');
  if (seqs !== undefined) query = query.where('event_seq', 'in', seqs.length === 0 ? [-1] : seqs);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}
