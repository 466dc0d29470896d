import { sql } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import type { Role, UserRow } from '../platform/db/schema.js';
import { identityDb, type IdentityTrx } from './auth.tables.js';

export async function findUserByIdentity(
  db: Db,
  issuer: string,
  subject: string,
): Promise<UserRow | undefined> {
  return identityDb(db)
    .selectFrom('user_identities')
    .innerJoin('users', 'users.id', 'user_identities.user_id')
    .selectAll('users')
    .where('user_identities.issuer', '=', issuer)
    .where('user_identities.subject', '=', subject)
    .executeTakeFirst();
}

/** Links the provider account to the user, or records a new sign-in of an existing link. */
export async function linkIdentity(
  db: Db,
  issuer: string,
  subject: string,
  userId: string,
): Promise<void> {
  await identityDb(db)
    .insertInto('user_identities')
    .values({ issuer, subject, user_id: userId, last_sign_in_at: sql`now()` })
    .onConflict((oc) =>
      oc.columns(['issuer', 'subject']).doUpdateSet({ last_sign_in_at: sql`now()` }),
    )
    .execute();
}

export async function grantInstanceAdmin(db: Db, userId: string): Promise<UserRow | undefined> {
  return db
    .updateTable('users')
    .set({ is_instance_admin: true, updated_at: sql`now()` })
    .where('id', '=', userId)
    .returningAll()
    .executeTakeFirst();
}

export interface GroupRoleRow {
  group: string;
  role: Role;
  environmentId: string | null;
}

export async function listGroupRoles(db: Db, projectId: string): Promise<GroupRoleRow[]> {
  const rows = await identityDb(db)
    .selectFrom('project_group_roles')
    .select(['group_name', 'role', 'environment_id'])
    .where('project_id', '=', projectId)
    .orderBy('group_name')
    .execute();
  return rows.map((row) => ({
    group: row.group_name,
    role: row.role,
    environmentId: row.environment_id,
  }));
}

export async function replaceGroupRoles(
  db: Db,
  projectId: string,
  mappings: GroupRoleRow[],
): Promise<void> {
  await identityDb(db)
    .transaction()
    .execute(async (trx) => {
      await trx.deleteFrom('project_group_roles').where('project_id', '=', projectId).execute();
      if (mappings.length === 0) return;
      await trx
        .insertInto('project_group_roles')
        .values(
          mappings.map((m) => ({
            project_id: projectId,
            group_name: m.group,
            role: m.role,
            environment_id: m.environmentId,
          })),
        )
        .execute();
    });
}

export interface DesiredGrant {
  projectId: string;
  role: Role;
  environmentId: string | null;
}

/** Grants from per-project mappings of any of the groups. */
export async function projectMappingsFor(
  db: Db,
  groups: readonly string[],
): Promise<DesiredGrant[]> {
  if (groups.length === 0) return [];
  const rows = await identityDb(db)
    .selectFrom('project_group_roles')
    .select(['project_id', 'role', 'environment_id'])
    .where('group_name', 'in', groups)
    .execute();
  return rows.map((row) => ({
    projectId: row.project_id,
    role: row.role,
    environmentId: row.environment_id,
  }));
}

/** Resolves a project slug and optional environment name (instance-level mappings name them). */
export async function findProjectTarget(
  db: Db,
  slug: string,
  environment: string | undefined,
): Promise<{ projectId: string; environmentId: string | null } | undefined> {
  const project = await db
    .selectFrom('projects')
    .select('id')
    .where('slug', '=', slug)
    .executeTakeFirst();
  if (project === undefined) return undefined;
  if (environment === undefined) return { projectId: project.id, environmentId: null };
  const env = await db
    .selectFrom('environments')
    .select('id')
    .where('project_id', '=', project.id)
    .where('name', '=', environment)
    .executeTakeFirst();
  return env === undefined ? undefined : { projectId: project.id, environmentId: env.id };
}

export interface MembershipChange {
  projectId: string;
  change: 'added' | 'role_changed' | 'removed';
  role: Role | null;
}

/**
 * Makes the user's single-sign-on memberships match `desired`: adds and updates those
 * granted by single sign-on, removes the ones no group grants any more (never the last
 * owner), and leaves memberships granted through the members API alone.
 */
export async function syncSsoMemberships(
  db: Db,
  userId: string,
  desired: DesiredGrant[],
): Promise<MembershipChange[]> {
  return identityDb(db)
    .transaction()
    .execute(async (trx) => {
      const existing = await trx
        .selectFrom('project_members')
        .select(['project_id', 'role', 'environment_id', 'granted_by'])
        .where('user_id', '=', userId)
        .forUpdate()
        .execute();
      const byProject = new Map(existing.map((row) => [row.project_id, row]));
      const wanted = new Map(desired.map((grant) => [grant.projectId, grant]));
      const changes: MembershipChange[] = [];

      for (const grant of wanted.values()) {
        const current = byProject.get(grant.projectId);
        if (current === undefined) {
          await trx
            .insertInto('project_members')
            .values({
              project_id: grant.projectId,
              user_id: userId,
              role: grant.role,
              environment_id: grant.environmentId,
              granted_by: 'oidc',
            })
            .execute();
          changes.push({ projectId: grant.projectId, change: 'added', role: grant.role });
        } else if (
          current.granted_by === 'oidc' &&
          (current.role !== grant.role || current.environment_id !== grant.environmentId)
        ) {
          await trx
            .updateTable('project_members')
            .set({ role: grant.role, environment_id: grant.environmentId })
            .where('project_id', '=', grant.projectId)
            .where('user_id', '=', userId)
            .execute();
          changes.push({ projectId: grant.projectId, change: 'role_changed', role: grant.role });
        }
      }
      for (const current of existing) {
        if (current.granted_by !== 'oidc' || wanted.has(current.project_id)) continue;
        if (current.role === 'owner' && (await isLastOwner(trx, current.project_id))) continue;
        await trx
          .deleteFrom('project_members')
          .where('project_id', '=', current.project_id)
          .where('user_id', '=', userId)
          .execute();
        changes.push({ projectId: current.project_id, change: 'removed', role: null });
      }
      return changes;
    });
}

async function isLastOwner(trx: IdentityTrx, projectId: string): Promise<boolean> {
  const owners = await trx
    .selectFrom('project_members')
    .select('user_id')
    .where('project_id', '=', projectId)
    .where('role', '=', 'owner')
    .forUpdate()
    .execute();
  return owners.length <= 1;
}

/** A membership changed through the members API is no longer managed by single sign-on. */
export async function markManual(db: Db, projectId: string, userId: string): Promise<void> {
  await identityDb(db)
    .updateTable('project_members')
    .set({ granted_by: 'manual' })
    .where('project_id', '=', projectId)
    .where('user_id', '=', userId)
    .where('granted_by', '=', 'oidc')
    .execute();
}
