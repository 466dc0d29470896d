import type { Db } from '../platform/db/transaction.js';
import type { ReleaseRow } from '../platform/db/schema.js';
import { GRANT_COLUMNS, splitGrant, type ProjectAccessRow } from '../access/access.repository.js';
import { executePrepared } from '../platform/db/prepared.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

export async function findReleaseAccess(
  db: Db,
  releaseId: string,
  userId: string,
): Promise<{ release: ReleaseRow; access: ProjectAccessRow } | undefined> {
  const [row] = await executePrepared(
    db,
    db
      .selectFrom('releases')
      .innerJoin('services', 'services.id', 'releases.service_id')
      .innerJoin('projects', 'projects.id', 'services.project_id')
      .leftJoin('project_members as pm', (join) =>
        join.onRef('pm.project_id', '=', 'services.project_id').on('pm.user_id', '=', userId),
      )
      .selectAll('releases')
      .select(GRANT_COLUMNS)
      .where('releases.id', '=', releaseId),
  );
  if (row === undefined) return undefined;
  const { resource: release, access } = splitGrant(row);
  return { release, access };
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
