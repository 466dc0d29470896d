import { sql } from 'kysely';
import type { Db, Trx } from '../platform/db/transaction.js';
import type { AuditRecord } from './audit-event.js';
import {
  auditDb,
  type AuditDb,
  type AuditEventRow,
  type CheckpointRow,
  type Outcome,
} from './audit.tables.js';

/** The filters GET /v1/audit-events accepts: each one a column, never text for SQL. */
export interface EventFilters {
  actorId?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  projectId?: string;
  environmentId?: string;
  outcome?: Outcome;
  from?: Date;
  to?: Date;
}

/** Whose events a reader may see: all of them, or those of the grants listed. */
export type Visibility =
  | { kind: 'all' }
  | { kind: 'grants'; grants: ReadonlyArray<{ projectId: string; environmentId: string | null }> };

/**
 * Inserts events in one statement, in order; the chain trigger numbers and links them and
 * skips any whose id is already stored. Returns how many were stored.
 *
 * The rows travel as one array per column (`unnest`), not as one parameter per value: a
 * batch of hundreds of events is then 19 parameters to send and parse instead of thousands,
 * which roughly halves the time of a batch on PGlite. unnest yields the rows in array order.
 */
export async function insertEvents(db: Db, records: readonly AuditRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  const column = <T>(pick: (record: AuditRecord) => T): T[] => records.map(pick);
  const json = (value: unknown) => (value === null ? null : JSON.stringify(value));
  const result = await sql`
    insert into audit_events (
      id, occurred_at, actor_type, actor_id, actor_token_id, actor_role, action,
      resource_type, resource_id, resource_name, project_id, environment_id,
      client_ip, user_agent, request_id, outcome, diff, details, content_hash
    )
    select * from unnest(
      ${column((r) => r.id)}::uuid[], ${column((r) => r.occurredAt)}::timestamptz[],
      ${column((r) => r.actorType)}::text[], ${column((r) => r.actorId)}::uuid[],
      ${column((r) => r.actorTokenId)}::uuid[], ${column((r) => r.actorRole)}::text[],
      ${column((r) => r.action)}::text[], ${column((r) => r.resourceType)}::text[],
      ${column((r) => r.resourceId)}::text[], ${column((r) => r.resourceName)}::text[],
      ${column((r) => r.projectId)}::uuid[], ${column((r) => r.environmentId)}::uuid[],
      ${column((r) => r.clientIp)}::text[], ${column((r) => r.userAgent)}::text[],
      ${column((r) => r.requestId)}::text[], ${column((r) => r.outcome)}::text[],
      ${column((r) => json(r.diff))}::jsonb[], ${column((r) => json(r.details))}::jsonb[],
      ${column((r) => r.contentHash)}::text[]
    )`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

export async function getChainHead(db: Db): Promise<{ seq: number; hash: string }> {
  const row = await auditDb(db)
    .selectFrom('audit_chain_head')
    .select(['seq', 'hash'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  return { seq: Number(row.seq), hash: row.hash };
}

/**
 * Locks the chain head row until `trx` ends: the lock every event insert takes first, before
 * its fan-out locks the sinks it writes outbox rows for. Taken first by a change that locks a
 * sink itself (deleting one), it puts both in the same order, so they cannot deadlock, and no
 * fan-out can be between reading the sinks and inserting for one that is being deleted.
 */
export async function lockChainHead(trx: Trx): Promise<void> {
  await auditDb(trx)
    .selectFrom('audit_chain_head')
    .select('seq')
    .where('id', '=', 1)
    .forUpdate()
    .executeTakeFirstOrThrow();
}

function visible(adb: AuditDb, visibility: Visibility) {
  let query = adb.selectFrom('audit_events').selectAll();
  if (visibility.kind === 'grants') {
    const { grants } = visibility;
    query = query.where((eb) =>
      grants.length === 0
        ? eb.val(false)
        : eb.or(
            grants.map((grant) =>
              grant.environmentId === null
                ? eb('project_id', '=', grant.projectId)
                : eb.and([
                    eb('project_id', '=', grant.projectId),
                    eb('environment_id', '=', grant.environmentId),
                  ]),
            ),
          ),
    );
  }
  return query;
}

/** A page of events, newest first, strictly before `beforeSeq` when given. */
export async function listEvents(
  db: Db,
  visibility: Visibility,
  filters: EventFilters,
  page: { limit: number; beforeSeq: number | undefined },
): Promise<AuditEventRow[]> {
  let query = visible(auditDb(db), visibility);
  if (filters.actorId !== undefined) query = query.where('actor_id', '=', filters.actorId);
  if (filters.action !== undefined) query = query.where('action', '=', filters.action);
  if (filters.resourceType !== undefined)
    query = query.where('resource_type', '=', filters.resourceType);
  if (filters.resourceId !== undefined) query = query.where('resource_id', '=', filters.resourceId);
  if (filters.projectId !== undefined) query = query.where('project_id', '=', filters.projectId);
  if (filters.environmentId !== undefined)
    query = query.where('environment_id', '=', filters.environmentId);
  if (filters.outcome !== undefined) query = query.where('outcome', '=', filters.outcome);
  if (filters.from !== undefined) query = query.where('occurred_at', '>=', filters.from);
  if (filters.to !== undefined) query = query.where('occurred_at', '<', filters.to);
  if (page.beforeSeq !== undefined) query = query.where('seq', '<', page.beforeSeq);
  return query
    .orderBy('seq', 'desc')
    .limit(page.limit + 1)
    .execute();
}

/** Events in chain order from `afterSeq` (exclusive), at most `limit`; all columns. */
export async function eventsAfter(
  db: Db,
  afterSeq: number,
  limit: number,
  toSeq?: number,
): Promise<AuditEventRow[]> {
  let query = auditDb(db).selectFrom('audit_events').selectAll().where('seq', '>', afterSeq);
  if (toSeq !== undefined) query = query.where('seq', '<=', toSeq);
  return query.orderBy('seq', 'asc').limit(limit).execute();
}

/**
 * The chain positions bounding events that occurred in [from, to): the first at or after
 * `from`, the last before `to`. Undefined when no event falls in the range.
 */
export async function seqRange(
  db: Db,
  from: Date,
  to: Date,
): Promise<{ first: number; last: number } | undefined> {
  const row = await auditDb(db)
    .selectFrom('audit_events')
    .select((eb) => [eb.fn.min('seq').as('first'), eb.fn.max('seq').as('last')])
    .where('occurred_at', '>=', from)
    .where('occurred_at', '<', to)
    .executeTakeFirst();
  if (row?.first === null || row?.first === undefined || row.last === null) return undefined;
  return { first: Number(row.first), last: Number(row.last) };
}

export async function insertCheckpoint(
  db: Db,
  checkpoint: { seq: number; hash: string; keyId: string; signature: string },
): Promise<CheckpointRow> {
  return auditDb(db)
    .insertInto('audit_checkpoints')
    .values({
      seq: checkpoint.seq,
      hash: checkpoint.hash,
      key_id: checkpoint.keyId,
      signature: checkpoint.signature,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findLatestCheckpoint(db: Db): Promise<CheckpointRow | undefined> {
  return auditDb(db)
    .selectFrom('audit_checkpoints')
    .selectAll()
    .orderBy('seq', 'desc')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** The first checkpoint at or after `seq`, if one was signed. */
export async function findCheckpointFrom(db: Db, seq: number): Promise<CheckpointRow | undefined> {
  return auditDb(db)
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('seq', '>=', seq)
    .orderBy('seq', 'asc')
    .limit(1)
    .executeTakeFirst();
}

/** Checkpoints in order of the position they sign, a page at a time. */
export async function checkpointsAfter(
  db: Db,
  afterSeq: number,
  limit: number,
): Promise<CheckpointRow[]> {
  return auditDb(db)
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('seq', '>', afterSeq)
    .orderBy('seq', 'asc')
    .limit(limit)
    .execute();
}

/** The stored hash of the event at `seq`. */
export async function findHashAt(db: Db, seq: number): Promise<string | undefined> {
  const row = await auditDb(db)
    .selectFrom('audit_events')
    .select('hash')
    .where('seq', '=', seq)
    .executeTakeFirst();
  return row?.hash;
}

/** Counts events carrying a request id (the fault tests compare them with requests answered). */
export async function countByRequestIds(
  db: Db,
  requestIds: readonly string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let start = 0; start < requestIds.length; start += 500) {
    const chunk = requestIds.slice(start, start + 500);
    const rows = await auditDb(db)
      .selectFrom('audit_events')
      .select(['request_id', sql<number>`count(*)::int`.as('count')])
      .where('request_id', 'in', chunk)
      .groupBy('request_id')
      .execute();
    for (const row of rows)
      if (row.request_id !== null) counts.set(row.request_id, Number(row.count));
  }
  return counts;
}

/** The projects (and environments) where the user is an Owner or Admin today. */
export async function listAuditGrants(
  db: Db,
  userId: string,
): Promise<Array<{ projectId: string; environmentId: string | null }>> {
  const rows = await db
    .selectFrom('project_members')
    .select(['project_id', 'environment_id'])
    .where('user_id', '=', userId)
    .where('role', 'in', ['owner', 'admin'])
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
    .execute();
  return rows.map((row) => ({ projectId: row.project_id, environmentId: row.environment_id }));
}

/** Work a job does on someone's behalf: the build, deployment or secret rotation it runs. */
export type JobSubject = { kind: 'build' | 'deployment' | 'rotation'; id: string };

/** The user who asked for the work a job does; null when unknown (or the user is gone). */
export async function findJobRequester(db: Db, subject: JobSubject): Promise<string | null> {
  if (subject.kind === 'build') {
    const row = await db
      .selectFrom('builds')
      .select('created_by')
      .where('id', '=', subject.id)
      .executeTakeFirst();
    return row?.created_by ?? null;
  }
  if (subject.kind === 'deployment') {
    const row = await db
      .selectFrom('deployments')
      .select('created_by')
      .where('id', '=', subject.id)
      .executeTakeFirst();
    return row?.created_by ?? null;
  }
  const { rows } = await sql<{ requested_by: string | null }>`
    select requested_by from secret_rotations where id = ${subject.id}`.execute(db);
  return rows[0]?.requested_by ?? null;
}

/** What a request's URL names, by which its event is placed in a project. */
export type RouteTarget =
  | { kind: 'project'; project: string; environment: string | undefined }
  | { kind: 'service' | 'build' | 'release' | 'deployment'; id: string };

export interface RouteScope {
  projectId: string;
  environmentId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The project (and environment, where the URL names one) of what a request's URL names;
 * undefined when nothing matches. A project is named by id or slug, an environment by id or
 * name; a service, build, release or deployment by id (a deployment names its environment).
 */
export async function findRouteScope(db: Db, target: RouteTarget): Promise<RouteScope | undefined> {
  if (target.kind === 'project') return findProjectScope(db, target.project, target.environment);
  if (!UUID.test(target.id)) return undefined;
  if (target.kind === 'service') {
    const row = await db
      .selectFrom('services')
      .select('project_id')
      .where('id', '=', target.id)
      .executeTakeFirst();
    return row === undefined ? undefined : { projectId: row.project_id, environmentId: null };
  }
  if (target.kind === 'deployment') {
    const row = await db
      .selectFrom('deployments as d')
      .innerJoin('services as s', 's.id', 'd.service_id')
      .select(['s.project_id', 'd.environment_id'])
      .where('d.id', '=', target.id)
      .executeTakeFirst();
    return row === undefined
      ? undefined
      : { projectId: row.project_id, environmentId: row.environment_id };
  }
  const row =
    target.kind === 'build'
      ? await db
          .selectFrom('builds as r')
          .innerJoin('services as s', 's.id', 'r.service_id')
          .select('s.project_id')
          .where('r.id', '=', target.id)
          .executeTakeFirst()
      : await db
          .selectFrom('releases as r')
          .innerJoin('services as s', 's.id', 'r.service_id')
          .select('s.project_id')
          .where('r.id', '=', target.id)
          .executeTakeFirst();
  return row === undefined ? undefined : { projectId: row.project_id, environmentId: null };
}

async function findProjectScope(
  db: Db,
  project: string,
  environment: string | undefined,
): Promise<RouteScope | undefined> {
  const found = await db
    .selectFrom('projects')
    .select('id')
    .where((eb) =>
      UUID.test(project)
        ? eb.or([eb('id', '=', project), eb('slug', '=', project)])
        : eb('slug', '=', project),
    )
    .executeTakeFirst();
  if (found === undefined) return undefined;
  if (environment === undefined) return { projectId: found.id, environmentId: null };
  const env = await db
    .selectFrom('environments')
    .select('id')
    .where('project_id', '=', found.id)
    .where((eb) =>
      UUID.test(environment)
        ? eb.or([eb('id', '=', environment), eb('name', '=', environment)])
        : eb('name', '=', environment),
    )
    .executeTakeFirst();
  return { projectId: found.id, environmentId: env?.id ?? null };
}
