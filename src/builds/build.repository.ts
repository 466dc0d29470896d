import { sql } from 'kysely';
import type { Db, Trx } from '../platform/db/transaction.js';
import type {
  BuildRow,
  ReleaseRow,
  StartCommandJson,
  ArtifactKind,
} from '../platform/db/schema.js';
import { GRANT_COLUMNS, splitGrant, type ProjectAccessRow } from '../access/access.repository.js';
import { executePrepared } from '../platform/db/prepared.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

export async function insertBuild(
  trx: Db | Trx,
  build: { serviceId: string; ref: string; createdBy: string },
): Promise<BuildRow> {
  return trx
    .insertInto('builds')
    .values({ service_id: build.serviceId, ref: build.ref, created_by: build.createdBy })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getBuildById(db: Db, id: string): Promise<BuildRow | undefined> {
  return db.selectFrom('builds').selectAll().where('id', '=', id).executeTakeFirst();
}

/** A build with the caller's grant in its project, in one query. */
export async function findBuildAccess(
  db: Db,
  buildId: string,
  userId: string,
): Promise<
  { build: BuildRow & { release_id: string | null }; access: ProjectAccessRow } | undefined
> {
  const [row] = await executePrepared(
    db,
    db
      .selectFrom('builds')
      .innerJoin('services', 'services.id', 'builds.service_id')
      .innerJoin('projects', 'projects.id', 'services.project_id')
      .leftJoin('project_members as pm', (join) =>
        join.onRef('pm.project_id', '=', 'services.project_id').on('pm.user_id', '=', userId),
      )
      .selectAll('builds')
      .select(GRANT_COLUMNS)
      .select((eb) =>
        eb
          .selectFrom('releases')
          .select('releases.id')
          .whereRef('releases.build_id', '=', 'builds.id')
          .orderBy('releases.version')
          .limit(1)
          .as('release_id'),
      )
      .where('builds.id', '=', buildId),
  );
  if (row === undefined) return undefined;
  const { resource: build, access } = splitGrant(row);
  return { build, access };
}

export async function listBuilds(db: Db, serviceId: string, page: PageRequest) {
  let query = db
    .selectFrom('builds')
    .selectAll('builds')
    .select((eb) => [
      cursorPosition('builds'),
      eb
        .selectFrom('releases')
        .select('releases.id')
        .whereRef('releases.build_id', '=', 'builds.id')
        .orderBy('releases.version')
        .limit(1)
        .as('release_id'),
    ])
    .where('builds.service_id', '=', serviceId);
  if (page.after !== undefined) query = query.where(afterCursor('builds', page.after));
  return query
    .orderBy('builds.created_at', 'desc')
    .orderBy('builds.id', 'desc')
    .limit(fetchSize(page))
    .execute();
}

/**
 * Claims a build for `workerId`: a queued one, or a running one whose worker stopped
 * beating for `staleMs` (it died mid-build). Counts the attempt. Returns undefined when the
 * build finished or a live worker holds it: the job has nothing to do.
 */
export async function claimBuild(
  db: Db,
  id: string,
  workerId: string,
  staleMs: number,
): Promise<BuildRow | undefined> {
  return db
    .updateTable('builds')
    .set((eb) => ({
      status: 'running',
      started_at: sql`now()`,
      attempt: eb('attempt', '+', 1),
      worker_id: workerId,
    }))
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('status', '=', 'queued'),
        eb.and([
          eb('status', '=', 'running'),
          sql<boolean>`NOT EXISTS (SELECT 1 FROM worker_heartbeats w WHERE w.id = builds.worker_id AND w.heartbeat_at > now() - ${staleMs} * interval '1 millisecond')`,
        ]),
      ]),
    )
    .returningAll()
    .executeTakeFirst();
}

export async function finishBuild(
  db: Db | Trx,
  id: string,
  outcome: {
    status: 'succeeded' | 'failed' | 'cancelled';
    commitSha?: string;
    failureReason?: string;
  },
): Promise<void> {
  await db
    .updateTable('builds')
    .set({
      status: outcome.status,
      finished_at: sql`now()`,
      ...(outcome.commitSha === undefined ? {} : { commit_sha: outcome.commitSha }),
      ...(outcome.failureReason === undefined ? {} : { failure_reason: outcome.failureReason }),
    })
    .where('id', '=', id)
    .execute();
}

export async function nextLogSeq(db: Db, buildId: string): Promise<number> {
  const row = await db
    .selectFrom('build_logs')
    .select((eb) => eb.fn.max('seq').as('max'))
    .where('build_id', '=', buildId)
    .executeTakeFirst();
  return row?.max === null || row?.max === undefined ? 0 : Number(row.max) + 1;
}

export async function appendBuildLogs(
  db: Db,
  buildId: string,
  lines: Array<{ seq: number; line: string }>,
): Promise<void> {
  if (lines.length === 0) return;
  await db
    .insertInto('build_logs')
    .values(lines.map((entry) => ({ build_id: buildId, seq: entry.seq, line: entry.line })))
    .onConflict((oc) => oc.columns(['build_id', 'seq']).doNothing())
    .execute();
}

export async function readBuildLogs(
  db: Db,
  buildId: string,
  afterSeq: number,
  limit: number,
): Promise<Array<{ seq: number; line: string; created_at: Date }>> {
  return db
    .selectFrom('build_logs')
    .select(['seq', 'line', 'created_at'])
    .where('build_id', '=', buildId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
}

/** Records a release for a finished build with the next version number of its service. */
export async function insertRelease(
  trx: Trx,
  release: {
    serviceId: string;
    buildId: string;
    commitSha: string;
    digest: string;
    artifactPath: string;
    kind: ArtifactKind;
    start: StartCommandJson;
    config: Record<string, string>;
  },
): Promise<ReleaseRow> {
  // Serialise version numbering per service.
  await sql`SELECT pg_advisory_xact_lock(hashtext(${release.serviceId}))`.execute(trx);
  const max = await trx
    .selectFrom('releases')
    .select((eb) => eb.fn.max('version').as('max'))
    .where('service_id', '=', release.serviceId)
    .executeTakeFirst();
  return trx
    .insertInto('releases')
    .values({
      service_id: release.serviceId,
      build_id: release.buildId,
      version: Number(max?.max ?? 0) + 1,
      commit_sha: release.commitSha,
      digest: release.digest,
      artifact_path: release.artifactPath,
      kind: release.kind,
      start_command: JSON.stringify(release.start),
      config_snapshot: JSON.stringify(release.config),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findReleaseOfBuild(db: Db, buildId: string): Promise<ReleaseRow | undefined> {
  return db
    .selectFrom('releases')
    .selectAll()
    .where('build_id', '=', buildId)
    .orderBy('version')
    .executeTakeFirst();
}

/** The workload slot of a project (which picks the user its builds run as); undefined if gone. */
export async function findProjectWorkloadSlot(
  db: Db,
  projectId: string,
): Promise<number | undefined> {
  const row = await db
    .selectFrom('projects')
    .select('workload_slot')
    .where('id', '=', projectId)
    .executeTakeFirst();
  return row?.workload_slot;
}
