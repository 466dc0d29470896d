import type { Db } from '../platform/db/transaction.js';
import { executePrepared } from '../platform/db/prepared.js';
import type { Role } from '../platform/db/schema.js';

export interface ProjectAccessRow {
  projectId: string;
  projectSlug: string;
  projectStatus: 'active' | 'archived';
  role: Role | null;
  environmentId: string | null;
  memberExpiresAt: Date | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The project named by id or slug and the user's grant in it (role null when none). */
export async function findProjectAccess(
  db: Db,
  idOrSlug: string,
  userId: string,
): Promise<ProjectAccessRow | undefined> {
  const [row] = await executePrepared(
    db,
    db
      .selectFrom('projects')
      .leftJoin('project_members as pm', (join) =>
        join.onRef('pm.project_id', '=', 'projects.id').on('pm.user_id', '=', userId),
      )
      .select([
        'projects.id',
        'projects.slug',
        'projects.status',
        'pm.role',
        'pm.environment_id',
        'pm.expires_at',
      ])
      .where(UUID.test(idOrSlug) ? 'projects.id' : 'projects.slug', '=', idOrSlug.toLowerCase()),
  );
  if (row === undefined) return undefined;
  return {
    projectId: row.id,
    projectSlug: row.slug,
    projectStatus: row.status,
    role: row.role,
    environmentId: row.environment_id,
    memberExpiresAt: row.expires_at,
  };
}

/**
 * The caller's grant, selected beside a resource that belongs to a service: the query joins
 * `services`, `projects` and `project_members as pm` (left, on the caller) and selects these.
 */
export const GRANT_COLUMNS = [
  'services.project_id as grant_project_id',
  'projects.slug as grant_project_slug',
  'projects.status as grant_project_status',
  'pm.role as grant_role',
  'pm.environment_id as grant_environment_id',
  'pm.expires_at as grant_expires_at',
] as const;

interface GrantColumns {
  grant_project_id: string;
  grant_project_slug: string;
  grant_project_status: 'active' | 'archived';
  grant_role: Role | null;
  grant_environment_id: string | null;
  grant_expires_at: Date | null;
}

/** Splits a row selected with GRANT_COLUMNS into the resource and the caller's grant. */
export function splitGrant<T extends GrantColumns>(
  row: T,
): { resource: Omit<T, keyof GrantColumns>; access: ProjectAccessRow } {
  const {
    grant_project_id,
    grant_project_slug,
    grant_project_status,
    grant_role,
    grant_environment_id,
    grant_expires_at,
    ...resource
  } = row;
  return {
    resource,
    access: {
      projectId: grant_project_id,
      projectSlug: grant_project_slug,
      projectStatus: grant_project_status,
      role: grant_role,
      environmentId: grant_environment_id,
      memberExpiresAt: grant_expires_at,
    },
  };
}
