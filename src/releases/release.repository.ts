import type { Db } from '../platform/db/transaction.js';
import type { ReleaseRow } from '../platform/db/schema.js';
import type { ProjectAccessRow } from '../access/access.repository.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

export async function findReleaseAccess(
  db: Db,
  releaseId: string,
  userId: string,
): Promise<{ release: ReleaseRow; access: ProjectAccessRow } | undefined> {
  const row = await db
    .selectFrom('releases')
    .innerJoin('services', 'services.id', 'releases.service_id')
    .innerJoin('projects', 'projects.id', 'services.project_id')
    .leftJoin('project_members as pm', (join) =>
      join.onRef('pm.project_id', '=', 'services.project_id').on('pm.user_id', '=', userId),
    )
    .selectAll('releases')
    .select([
      'services.project_id',
      'projects.slug as project_slug',
      'projects.status as project_status',
      'pm.role',
      'pm.environment_id',
      'pm.expires_at as member_expires_at',
    ])
    .where('releases.id', '=', releaseId)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const {
    project_id,
    project_slug,
    project_status,
    role,
    environment_id,
    member_expires_at,
    ...release
  } = row;
  return {
    release,
    access: {
      projectId: project_id,
      projectSlug: project_slug,
      projectStatus: project_status,
      role,
      environmentId: environment_id,
      memberExpiresAt: member_expires_at,
    },
  };
}

export async function getReleaseById(db: Db, id: string): Promise<ReleaseRow | undefined> {
  return db.selectFrom('releases').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findLatestRelease(
  db: Db,
  serviceId: string,
): Promise<ReleaseRow | undefined> {
  return db
    .selectFrom('releases')
    .selectAll()
    .where('service_id', '=', serviceId)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export async function listReleases(db: Db, serviceId: string, page: PageRequest) {
  let query = db
    .selectFrom('releases')
    .selectAll()
    .select(cursorPosition('releases'))
    .where('service_id', '=', serviceId);
  if (page.after !== undefined) query = query.where(afterCursor('releases', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}
