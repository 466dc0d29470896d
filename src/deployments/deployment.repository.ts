import { sql } from 'kysely';
import type { Db, Trx } from '../platform/db/transaction.js';
import type {
  DeploymentKind,
  DeploymentRow,
  ReleaseRow,
  RuntimeSettings,
} from '../platform/db/schema.js';
import { GRANT_COLUMNS, splitGrant, type ProjectAccessRow } from '../access/access.repository.js';
import { executePrepared } from '../platform/db/prepared.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

export async function insertDeployment(
  trx: Db | Trx,
  deployment: {
    serviceId: string;
    environmentId: string;
    releaseId: string;
    kind: DeploymentKind;
    replicas: number;
    createdBy: string;
  },
): Promise<DeploymentRow> {
  return trx
    .insertInto('deployments')
    .values({
      service_id: deployment.serviceId,
      environment_id: deployment.environmentId,
      release_id: deployment.releaseId,
      kind: deployment.kind,
      replicas: deployment.replicas,
      created_by: deployment.createdBy,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findDeploymentAccess(
  db: Db,
  deploymentId: string,
  userId: string,
): Promise<{ deployment: DeploymentRow; access: ProjectAccessRow } | undefined> {
  const [row] = await executePrepared(
    db,
    db
      .selectFrom('deployments')
      .innerJoin('services', 'services.id', 'deployments.service_id')
      .innerJoin('projects', 'projects.id', 'services.project_id')
      .leftJoin('project_members as pm', (join) =>
        join.onRef('pm.project_id', '=', 'services.project_id').on('pm.user_id', '=', userId),
      )
      .selectAll('deployments')
      .select(GRANT_COLUMNS)
      .where('deployments.id', '=', deploymentId),
  );
  if (row === undefined) return undefined;
  const { resource: deployment, access } = splitGrant(row);
  return { deployment, access };
}

export async function listDeployments(
  db: Db,
  serviceId: string,
  page: PageRequest,
  environmentId?: string,
) {
  let query = db
    .selectFrom('deployments')
    .selectAll()
    .select(cursorPosition('deployments'))
    .where('service_id', '=', serviceId);
  if (environmentId !== undefined) query = query.where('environment_id', '=', environmentId);
  if (page.after !== undefined) query = query.where(afterCursor('deployments', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

/** Everything the reconciler needs to run one deployment. */
export interface DeploymentPlan {
  deployment: DeploymentRow;
  release: ReleaseRow;
  runtime: RuntimeSettings;
  labels: { project: string; environment: string; service: string };
  /** The project's number, which picks the user its workloads run as. */
  workloadSlot: number;
}

function planQuery(db: Db) {
  return db
    .selectFrom('deployments as d')
    .innerJoin('releases as r', 'r.id', 'd.release_id')
    .innerJoin('services as s', 's.id', 'd.service_id')
    .innerJoin('environments as e', 'e.id', 'd.environment_id')
    .innerJoin('projects as p', 'p.id', 's.project_id')
    .selectAll('d')
    .select([
      'r.id as r_id',
      'r.service_id as r_service_id',
      'r.build_id as r_build_id',
      'r.version as r_version',
      'r.commit_sha as r_commit_sha',
      'r.digest as r_digest',
      'r.artifact_path as r_artifact_path',
      'r.kind as r_kind',
      'r.start_command as r_start_command',
      'r.config_snapshot as r_config_snapshot',
      'r.created_at as r_created_at',
      's.runtime as s_runtime',
      's.name as s_name',
      'e.name as e_name',
      'p.slug as p_slug',
      'p.workload_slot as p_workload_slot',
    ]);
}

type PlanRow = Awaited<ReturnType<ReturnType<typeof planQuery>['executeTakeFirstOrThrow']>>;

function toPlan(row: PlanRow): DeploymentPlan {
  const {
    r_id,
    r_service_id,
    r_build_id,
    r_version,
    r_commit_sha,
    r_digest,
    r_artifact_path,
    r_kind,
    r_start_command,
    r_config_snapshot,
    r_created_at,
    s_runtime,
    s_name,
    e_name,
    p_slug,
    p_workload_slot,
    ...deployment
  } = row;
  return {
    deployment,
    release: {
      id: r_id,
      service_id: r_service_id,
      build_id: r_build_id,
      version: r_version,
      commit_sha: r_commit_sha,
      digest: r_digest,
      artifact_path: r_artifact_path,
      kind: r_kind,
      start_command: r_start_command,
      config_snapshot: r_config_snapshot,
      created_at: r_created_at,
    },
    runtime: s_runtime,
    labels: { project: p_slug, environment: e_name, service: s_name },
    workloadSlot: p_workload_slot,
  };
}

export async function findDeploymentPlan(
  db: Db,
  deploymentId: string,
): Promise<DeploymentPlan | undefined> {
  const row = await planQuery(db).where('d.id', '=', deploymentId).executeTakeFirst();
  return row === undefined ? undefined : toPlan(row);
}

/** Deployments that should be running: the live one of each service and environment. */
export async function listLivePlans(db: Db): Promise<DeploymentPlan[]> {
  const rows = await planQuery(db).where('d.status', '=', 'live').orderBy('d.created_at').execute();
  return rows.map(toPlan);
}

/**
 * Claims a deployment for reconciling by `workerId`: a pending one, or one in progress whose
 * worker stopped beating for `staleMs`. Undefined when it finished or a live worker holds it.
 */
export async function claimDeployment(
  db: Db,
  id: string,
  workerId: string,
  staleMs: number,
): Promise<DeploymentRow | undefined> {
  return db
    .updateTable('deployments')
    .set({
      status: 'in_progress',
      started_at: sql`coalesce(started_at, now())`,
      worker_id: workerId,
    })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('status', '=', 'pending'),
        eb.and([
          eb('status', '=', 'in_progress'),
          sql<boolean>`NOT EXISTS (SELECT 1 FROM worker_heartbeats w WHERE w.id = deployments.worker_id AND w.heartbeat_at > now() - ${staleMs} * interval '1 millisecond')`,
        ]),
      ]),
    )
    .returningAll()
    .executeTakeFirst();
}

/**
 * Makes a deployment the live one of its service and environment; the previous live ones
 * become superseded. Returns their ids so their instances can be drained. Returns
 * undefined when a newer deployment already went live (this one is then superseded too).
 */
export async function promoteToLive(
  trx: Trx,
  deployment: DeploymentRow,
): Promise<string[] | undefined> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${deployment.service_id + deployment.environment_id}))`.execute(
    trx,
  );
  const newer = await trx
    .selectFrom('deployments')
    .select('id')
    .where('service_id', '=', deployment.service_id)
    .where('environment_id', '=', deployment.environment_id)
    .where('status', '=', 'live')
    .where('created_at', '>', deployment.created_at)
    .executeTakeFirst();
  if (newer !== undefined) {
    await trx
      .updateTable('deployments')
      .set({ status: 'superseded', finished_at: sql`now()` })
      .where('id', '=', deployment.id)
      .execute();
    return undefined;
  }
  const superseded = await trx
    .updateTable('deployments')
    .set({ status: 'superseded', finished_at: sql`now()` })
    .where('service_id', '=', deployment.service_id)
    .where('environment_id', '=', deployment.environment_id)
    .where('status', '=', 'live')
    .where('id', '<>', deployment.id)
    .returning('id')
    .execute();
  await trx
    .updateTable('deployments')
    .set({ status: 'live', live_at: sql`now()`, failure_reason: null })
    .where('id', '=', deployment.id)
    .execute();
  return superseded.map((row) => row.id);
}

export async function markFailed(db: Db, id: string, reason: string): Promise<void> {
  await db
    .updateTable('deployments')
    .set({ status: 'failed', failure_reason: reason, finished_at: sql`now()` })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'in_progress'])
    .execute();
}

export async function setFailureNote(db: Db, id: string, reason: string | null): Promise<void> {
  await db
    .updateTable('deployments')
    .set({ failure_reason: reason })
    .where('id', '=', id)
    .execute();
}

export async function findLiveDeployment(
  db: Db,
  serviceId: string,
  environmentId: string,
): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('service_id', '=', serviceId)
    .where('environment_id', '=', environmentId)
    .where('status', '=', 'live')
    .orderBy('created_at', 'desc')
    .executeTakeFirst();
}

/** The release that was live in the environment before `currentReleaseId`, if any. */
export async function findPreviousRelease(
  db: Db,
  serviceId: string,
  environmentId: string,
  currentReleaseId: string | undefined,
): Promise<string | undefined> {
  let query = db
    .selectFrom('deployments')
    .select('release_id')
    .where('service_id', '=', serviceId)
    .where('environment_id', '=', environmentId)
    .where('status', '=', 'superseded')
    .where('live_at', 'is not', null);
  if (currentReleaseId !== undefined) query = query.where('release_id', '<>', currentReleaseId);
  const row = await query.orderBy('live_at', 'desc').limit(1).executeTakeFirst();
  return row?.release_id;
}

/** Ids of deployments that run or may soon run instances of the service. */
export async function listActiveDeploymentIds(
  db: Db,
  filter: { serviceId?: string; projectId?: string },
): Promise<string[]> {
  let query = db
    .selectFrom('deployments')
    .innerJoin('services', 'services.id', 'deployments.service_id')
    .select('deployments.id')
    .where('deployments.status', 'in', ['pending', 'in_progress', 'live']);
  if (filter.serviceId !== undefined)
    query = query.where('deployments.service_id', '=', filter.serviceId);
  if (filter.projectId !== undefined)
    query = query.where('services.project_id', '=', filter.projectId);
  return (await query.execute()).map((row) => row.id);
}

export async function markStopped(db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('deployments')
    .set({ status: 'cancelled', finished_at: sql`now()` })
    .where('id', 'in', ids)
    .execute();
}
