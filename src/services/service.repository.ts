import { sql } from 'kysely';
import { joinTransaction, type Db } from '../platform/db/transaction.js';
import { executePrepared } from '../platform/db/prepared.js';
import type { BuildSettings, RuntimeSettings, ServiceRow } from '../platform/db/schema.js';
import { GRANT_COLUMNS, splitGrant, type ProjectAccessRow } from '../access/access.repository.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

/** A service and the caller's grant in its project, in one query. */
export async function findServiceAccess(
  db: Db,
  serviceId: string,
  userId: string,
): Promise<{ service: ServiceRow; access: ProjectAccessRow } | undefined> {
  const [row] = await executePrepared(
    db,
    db
      .selectFrom('services')
      .innerJoin('projects', 'projects.id', 'services.project_id')
      .leftJoin('project_members as pm', (join) =>
        join.onRef('pm.project_id', '=', 'services.project_id').on('pm.user_id', '=', userId),
      )
      .selectAll('services')
      .select(GRANT_COLUMNS)
      .where('services.id', '=', serviceId),
  );
  if (row === undefined) return undefined;
  const { resource: service, access } = splitGrant(row);
  return { service, access };
}

export async function getServiceById(db: Db, id: string): Promise<ServiceRow | undefined> {
  return db.selectFrom('services').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertService(
  db: Db,
  service: {
    projectId: string;
    name: string;
    gitUrl: string;
    branch: string;
    build: BuildSettings;
    runtime: RuntimeSettings;
  },
): Promise<ServiceRow | undefined> {
  return db
    .insertInto('services')
    .values({
      project_id: service.projectId,
      name: service.name,
      git_url: service.gitUrl,
      branch: service.branch,
      build: JSON.stringify(service.build),
      runtime: JSON.stringify(service.runtime),
    })
    .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listServices(db: Db, projectId: string, page: PageRequest) {
  let query = db
    .selectFrom('services')
    .selectAll()
    .select(cursorPosition('services'))
    .where('project_id', '=', projectId);
  if (page.after !== undefined) query = query.where(afterCursor('services', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

export async function updateService(
  db: Db,
  id: string,
  changes: { gitUrl?: string; branch?: string; build?: BuildSettings; runtime?: RuntimeSettings },
): Promise<ServiceRow | undefined> {
  return db
    .updateTable('services')
    .set({
      ...(changes.gitUrl === undefined ? {} : { git_url: changes.gitUrl }),
      ...(changes.branch === undefined ? {} : { branch: changes.branch }),
      ...(changes.build === undefined ? {} : { build: JSON.stringify(changes.build) }),
      ...(changes.runtime === undefined ? {} : { runtime: JSON.stringify(changes.runtime) }),
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteService(db: Db, id: string): Promise<void> {
  await db.deleteFrom('services').where('id', '=', id).execute();
}

export async function listVariables(
  db: Db,
  serviceId: string,
): Promise<Array<{ name: string; value: string; updated_at: Date }>> {
  return db
    .selectFrom('service_variables')
    .select(['name', 'value', 'updated_at'])
    .where('service_id', '=', serviceId)
    .orderBy('name')
    .execute();
}

/** Replaces the whole set of variables atomically. */
export async function replaceVariables(
  db: Db,
  serviceId: string,
  variables: Array<[string, string]>,
): Promise<void> {
  await joinTransaction(db, async (trx) => {
    await trx.deleteFrom('service_variables').where('service_id', '=', serviceId).execute();
    if (variables.length === 0) return;
    await trx
      .insertInto('service_variables')
      .values(variables.map(([name, value]) => ({ service_id: serviceId, name, value })))
      .execute();
  });
}

/** Adds or overwrites the given variables, leaving others alone. */
export async function mergeVariables(
  db: Db,
  serviceId: string,
  variables: Array<[string, string]>,
): Promise<void> {
  if (variables.length === 0) return;
  await db
    .insertInto('service_variables')
    .values(variables.map(([name, value]) => ({ service_id: serviceId, name, value })))
    .onConflict((oc) =>
      oc
        .columns(['service_id', 'name'])
        .doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), updated_at: sql`now()` })),
    )
    .execute();
}
