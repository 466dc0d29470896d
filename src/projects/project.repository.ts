import { sql } from 'kysely';
import { joinTransaction, type Db } from '../platform/db/transaction.js';
import type { EnvironmentRow, MemberRow, ProjectRow, Role } from '../platform/db/schema.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

export const STANDARD_ENVIRONMENTS = ['development', 'staging', 'production'] as const;

/**
 * Creates a project with its standard environments and the creator as owner, in one
 * transaction. Returns undefined when the slug is taken.
 */
export async function insertProject(
  db: Db,
  project: { slug: string; name: string; ownerId: string },
): Promise<ProjectRow | undefined> {
  return joinTransaction(db, async (trx) => {
    const row = await trx
      .insertInto('projects')
      .values({ slug: project.slug, name: project.name, created_by: project.ownerId })
      .onConflict((oc) => oc.column('slug').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) return undefined;
    await trx
      .insertInto('environments')
      .values(STANDARD_ENVIRONMENTS.map((name) => ({ project_id: row.id, name })))
      .execute();
    await trx
      .insertInto('project_members')
      .values({ project_id: row.id, user_id: project.ownerId, role: 'owner' })
      .execute();
    return row;
  });
}

export async function getProjectById(db: Db, id: string): Promise<ProjectRow | undefined> {
  return db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Projects the user may see (all of them for an instance admin), newest first; with
 * `onlyProjectId` (a project-restricted API token) at most that one.
 */
export async function listProjectsForUser(
  db: Db,
  user: { id: string; isInstanceAdmin: boolean; onlyProjectId?: string | undefined },
  page: PageRequest,
) {
  let query = db.selectFrom('projects').selectAll('projects').select(cursorPosition('projects'));
  if (user.onlyProjectId !== undefined) query = query.where('projects.id', '=', user.onlyProjectId);
  if (!user.isInstanceAdmin) {
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('project_members as pm')
          .select('pm.user_id')
          .whereRef('pm.project_id', '=', 'projects.id')
          .where('pm.user_id', '=', user.id)
          .where((inner) =>
            inner.or([inner('pm.expires_at', 'is', null), inner('pm.expires_at', '>', new Date())]),
          ),
      ),
    );
  }
  if (page.after !== undefined) query = query.where(afterCursor('projects', page.after));
  return query
    .orderBy('projects.created_at', 'desc')
    .orderBy('projects.id', 'desc')
    .limit(fetchSize(page))
    .execute();
}

export async function updateProject(
  db: Db,
  id: string,
  changes: { name?: string; status?: 'active' | 'archived' },
): Promise<ProjectRow | undefined> {
  return db
    .updateTable('projects')
    .set({ ...changes, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteProject(db: Db, id: string): Promise<void> {
  await db.deleteFrom('projects').where('id', '=', id).execute();
}

export async function findEnvironment(
  db: Db,
  projectId: string,
  idOrName: string,
): Promise<EnvironmentRow | undefined> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName);
  return db
    .selectFrom('environments')
    .selectAll()
    .where('project_id', '=', projectId)
    .where(isUuid ? 'id' : 'name', '=', idOrName.toLowerCase())
    .executeTakeFirst();
}

export async function listEnvironments(db: Db, projectId: string, page: PageRequest) {
  let query = db
    .selectFrom('environments')
    .selectAll()
    .select(cursorPosition('environments'))
    .where('project_id', '=', projectId);
  if (page.after !== undefined) query = query.where(afterCursor('environments', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

export async function insertEnvironment(
  db: Db,
  environment: { projectId: string; name: string; kind: 'standard' | 'preview' },
): Promise<EnvironmentRow | undefined> {
  return db
    .insertInto('environments')
    .values({ project_id: environment.projectId, name: environment.name, kind: environment.kind })
    .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function renameEnvironment(
  db: Db,
  id: string,
  name: string,
): Promise<EnvironmentRow | undefined> {
  return db
    .updateTable('environments')
    .set({ name, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function countLiveDeployments(db: Db, environmentId: string): Promise<number> {
  const row = await db
    .selectFrom('deployments')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('environment_id', '=', environmentId)
    .where('status', 'in', ['pending', 'in_progress', 'live'])
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function deleteEnvironment(db: Db, id: string): Promise<void> {
  await db.deleteFrom('environments').where('id', '=', id).execute();
}

export type MemberWithUser = MemberRow & {
  email: string;
  name: string;
  cursor_at: string;
  id: string;
};

export async function listMembers(db: Db, projectId: string, page: PageRequest) {
  let query = db
    .selectFrom('project_members as pm')
    .innerJoin('users', 'users.id', 'pm.user_id')
    .select([
      'pm.project_id',
      'pm.user_id',
      'pm.role',
      'pm.environment_id',
      'pm.expires_at',
      'pm.created_at',
      'users.email',
      'users.name',
      'users.id as id',
    ])
    .select(
      sql<string>`to_char(pm.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
        'cursor_at',
      ),
    )
    .where('pm.project_id', '=', projectId);
  if (page.after !== undefined) {
    query = query.where(
      sql<boolean>`(pm.created_at, pm.user_id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`,
    );
  }
  return query
    .orderBy('pm.created_at', 'desc')
    .orderBy('pm.user_id', 'desc')
    .limit(fetchSize(page))
    .execute();
}

export async function findMember(db: Db, projectId: string, userId: string) {
  return db
    .selectFrom('project_members as pm')
    .innerJoin('users', 'users.id', 'pm.user_id')
    .select([
      'pm.project_id',
      'pm.user_id',
      'pm.role',
      'pm.environment_id',
      'pm.expires_at',
      'pm.created_at',
      'users.email',
      'users.name',
    ])
    .where('pm.project_id', '=', projectId)
    .where('pm.user_id', '=', userId)
    .executeTakeFirst();
}

export async function insertMember(
  db: Db,
  member: {
    projectId: string;
    userId: string;
    role: Role;
    environmentId: string | null;
    expiresAt: Date | null;
  },
): Promise<boolean> {
  const result = await db
    .insertInto('project_members')
    .values({
      project_id: member.projectId,
      user_id: member.userId,
      role: member.role,
      environment_id: member.environmentId,
      expires_at: member.expiresAt,
    })
    .onConflict((oc) => oc.columns(['project_id', 'user_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

/**
 * Changes or removes a membership while keeping at least one owner. Locks the project's
 * owner rows so two concurrent demotions cannot both pass the check. Returns false when the
 * change would leave the project without an owner.
 */
export async function changeMember(
  db: Db,
  projectId: string,
  userId: string,
  change: { role: Role; environmentId: string | null; expiresAt: Date | null } | 'remove',
): Promise<'ok' | 'last_owner' | 'missing'> {
  return joinTransaction(db, async (trx) => {
    const owners = await trx
      .selectFrom('project_members')
      .select('user_id')
      .where('project_id', '=', projectId)
      .where('role', '=', 'owner')
      .forUpdate()
      .execute();
    const isOwner = owners.some((owner) => owner.user_id === userId);
    const losesOwner = change === 'remove' || change.role !== 'owner';
    if (isOwner && losesOwner && owners.length === 1) return 'last_owner';
    const affected =
      change === 'remove'
        ? (
            await trx
              .deleteFrom('project_members')
              .where('project_id', '=', projectId)
              .where('user_id', '=', userId)
              .executeTakeFirst()
          ).numDeletedRows
        : (
            await trx
              .updateTable('project_members')
              .set({
                role: change.role,
                environment_id: change.environmentId,
                expires_at: change.expiresAt,
              })
              .where('project_id', '=', projectId)
              .where('user_id', '=', userId)
              .executeTakeFirst()
          ).numUpdatedRows;
    return Number(affected) > 0 ? 'ok' : 'missing';
  });
}
