import type { Db } from '../platform/db/transaction.js';
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
  const row = await db
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
    .where(UUID.test(idOrSlug) ? 'projects.id' : 'projects.slug', '=', idOrSlug.toLowerCase())
    .executeTakeFirst();
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
