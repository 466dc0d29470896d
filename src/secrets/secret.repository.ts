import { sql, type ExpressionBuilder } from 'kysely';
import type { Db, Trx } from '../platform/db/transaction.js';
import type { PageRequest } from '../platform/http/pagination.js';
import type {
  LockboxDb,
  LockboxSchema,
  LockboxTables,
  LockboxTrx,
  SecretBackendName,
  SecretRow,
  SecretScope,
  SecretVersionRow,
  SecretVersionState,
} from './secret.tables.js';

export function lockboxDb(db: Db): LockboxDb {
  return db.withTables<LockboxTables>();
}

export function lockboxTrx(trx: Trx): LockboxTrx {
  return trx.withTables<LockboxTables>();
}

/** The columns a value store keeps on a version row. */
export interface StoredValue {
  key_id: string | null;
  wrapped_key: Buffer | null;
  ciphertext: Buffer | null;
  backend_version: number | null;
}

function inScope(scope: SecretScope) {
  return (eb: ExpressionBuilder<LockboxSchema, 'secrets'>) =>
    eb.and([
      eb('secrets.project_id', '=', scope.projectId),
      scope.kind === 'environment'
        ? eb('secrets.environment_id', '=', scope.environmentId)
        : eb('secrets.environment_id', 'is', null),
      scope.kind === 'service'
        ? eb('secrets.service_id', '=', scope.serviceId)
        : eb('secrets.service_id', 'is', null),
    ]);
}

export async function findSecret(
  db: LockboxDb | LockboxTrx,
  scope: SecretScope,
  name: string,
): Promise<SecretRow | undefined> {
  return db
    .selectFrom('secrets')
    .selectAll('secrets')
    .where('secrets.name', '=', name)
    .where(inScope(scope))
    .executeTakeFirst();
}

export async function getSecretById(
  db: LockboxDb | LockboxTrx,
  id: string,
): Promise<SecretRow | undefined> {
  return db.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Locks the secret row for a write; undefined when it does not exist. */
export async function lockSecret(trx: LockboxTrx, id: string): Promise<SecretRow | undefined> {
  return trx.selectFrom('secrets').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

/** Creates the secret with no versions yet counted; undefined when the name is taken. */
export async function insertSecret(
  trx: LockboxTrx,
  input: { scope: SecretScope; name: string; backend: SecretBackendName; createdBy: string | null },
): Promise<SecretRow | undefined> {
  const { scope } = input;
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`secret:${scope.projectId}:${input.name}`}))`.execute(
    trx,
  );
  if ((await findSecret(trx, scope, input.name)) !== undefined) return undefined;
  return trx
    .insertInto('secrets')
    .values({
      project_id: scope.projectId,
      environment_id: scope.kind === 'environment' ? scope.environmentId : null,
      service_id: scope.kind === 'service' ? scope.serviceId : null,
      name: input.name,
      backend: input.backend,
      current_version: 1,
      latest_version: 1,
      created_by: input.createdBy,
    })
    .returningAll()
    .executeTakeFirst();
}

export async function insertVersion(
  trx: LockboxTrx,
  input: {
    secretId: string;
    version: number;
    state: SecretVersionState;
    stored: StoredValue;
    createdBy: string | null;
  },
): Promise<SecretVersionRow> {
  return trx
    .insertInto('secret_versions')
    .values({
      secret_id: input.secretId,
      version: input.version,
      state: input.state,
      created_by: input.createdBy,
      ...input.stored,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function setVersionPointers(
  trx: LockboxTrx,
  secretId: string,
  pointers: { current: number; latest?: number },
): Promise<SecretRow> {
  return trx
    .updateTable('secrets')
    .set({
      current_version: pointers.current,
      ...(pointers.latest === undefined ? {} : { latest_version: pointers.latest }),
      updated_at: sql`now()`,
    })
    .where('id', '=', secretId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function setVersionState(
  db: LockboxDb | LockboxTrx,
  secretId: string,
  versions: number[],
  state: SecretVersionState,
): Promise<void> {
  if (versions.length === 0) return;
  await db
    .updateTable('secret_versions')
    .set({ state })
    .where('secret_id', '=', secretId)
    .where('version', 'in', versions)
    .where('state', '<>', 'destroyed')
    .execute();
}

/** Marks every other live version superseded (after a plain write or a restore). */
export async function supersedeOthers(
  trx: LockboxTrx,
  secretId: string,
  keep: number,
): Promise<void> {
  await trx
    .updateTable('secret_versions')
    .set({ state: 'superseded' })
    .where('secret_id', '=', secretId)
    .where('version', '<>', keep)
    .where('state', 'in', ['active', 'pending'])
    .execute();
}

export async function findVersion(
  db: LockboxDb | LockboxTrx,
  secretId: string,
  version: number,
): Promise<SecretVersionRow | undefined> {
  return db
    .selectFrom('secret_versions')
    .selectAll()
    .where('secret_id', '=', secretId)
    .where('version', '=', version)
    .executeTakeFirst();
}

export async function listVersions(
  db: LockboxDb | LockboxTrx,
  secretId: string,
): Promise<SecretVersionRow[]> {
  return db
    .selectFrom('secret_versions')
    .selectAll()
    .where('secret_id', '=', secretId)
    .orderBy('version', 'desc')
    .execute();
}

export async function markDestroyed(
  trx: LockboxTrx,
  secretId: string,
  versions: number[],
): Promise<void> {
  if (versions.length === 0) return;
  await trx
    .updateTable('secret_versions')
    .set({
      state: 'destroyed',
      key_id: null,
      wrapped_key: null,
      ciphertext: null,
      destroyed_at: sql`now()`,
    })
    .where('secret_id', '=', secretId)
    .where('version', 'in', versions)
    .execute();
}

export async function deleteSecret(db: LockboxDb, id: string): Promise<void> {
  await db.deleteFrom('secrets').where('id', '=', id).execute();
}

export async function listSecrets(db: LockboxDb, scope: SecretScope, page: PageRequest) {
  let query = db
    .selectFrom('secrets')
    .selectAll('secrets')
    .select(
      sql<string>`to_char(secrets.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
        'cursor_at',
      ),
    )
    .where(inScope(scope));
  if (page.after !== undefined) {
    query = query.where(
      sql<boolean>`(secrets.created_at, secrets.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`,
    );
  }
  return query
    .orderBy('secrets.created_at', 'desc')
    .orderBy('secrets.id', 'desc')
    .limit(page.limit + 1)
    .execute();
}

/**
 * The secrets that reach a workload of `serviceId` in `environmentId`: the project's, the
 * environment's and the service's own, with their current versions.
 */
export async function listApplicableSecrets(
  db: LockboxDb | LockboxTrx,
  target: { environmentId: string; serviceId: string },
): Promise<SecretRow[]> {
  return db
    .selectFrom('secrets')
    .selectAll()
    .where('project_id', '=', (eb) =>
      eb.selectFrom('services').select('project_id').where('id', '=', target.serviceId),
    )
    .where((eb) =>
      eb.or([
        eb.and([eb('environment_id', 'is', null), eb('service_id', 'is', null)]),
        eb('environment_id', '=', target.environmentId),
        eb('service_id', '=', target.serviceId),
      ]),
    )
    .execute();
}

/** The project's, its environments' and the service's own secrets — not other services'. */
export async function listProjectSecretsFor(
  db: LockboxDb | LockboxTrx,
  serviceId: string,
): Promise<SecretRow[]> {
  return db
    .selectFrom('secrets')
    .selectAll()
    .where('project_id', '=', (eb) =>
      eb.selectFrom('services').select('project_id').where('id', '=', serviceId),
    )
    .where((eb) => eb.or([eb('service_id', 'is', null), eb('service_id', '=', serviceId)]))
    .execute();
}

export async function listSecretsByIds(
  db: LockboxDb | LockboxTrx,
  ids: string[],
): Promise<SecretRow[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('secrets').selectAll().where('id', 'in', ids).execute();
}

export async function findVersions(
  db: LockboxDb | LockboxTrx,
  pins: Array<{ secretId: string; version: number }>,
): Promise<SecretVersionRow[]> {
  if (pins.length === 0) return [];
  return db
    .selectFrom('secret_versions')
    .selectAll()
    .where((eb) =>
      eb.or(
        pins.map((pin) =>
          eb.and([eb('secret_id', '=', pin.secretId), eb('version', '=', pin.version)]),
        ),
      ),
    )
    .execute();
}

export async function findDeploymentPins(
  db: LockboxDb | LockboxTrx,
  deploymentId: string,
): Promise<Record<string, number> | undefined> {
  const row = await db
    .selectFrom('deployment_secrets')
    .select('versions')
    .where('deployment_id', '=', deploymentId)
    .executeTakeFirst();
  return row?.versions;
}

/** Records the pins unless the deployment already has some; returns the ones that hold. */
export async function ensureDeploymentPins(
  db: LockboxDb | LockboxTrx,
  deploymentId: string,
  versions: Record<string, number>,
): Promise<Record<string, number>> {
  await db
    .insertInto('deployment_secrets')
    .values({ deployment_id: deploymentId, versions: JSON.stringify(versions) })
    .onConflict((oc) => oc.column('deployment_id').doNothing())
    .execute();
  return (await findDeploymentPins(db, deploymentId)) ?? versions;
}

/** Version rows sealed by a master key other than `currentKeyId` (and not one of `skip`). */
export async function listVersionsToRewrap(
  db: LockboxDb,
  currentKeyId: string,
  skip: string[],
  limit: number,
): Promise<SecretVersionRow[]> {
  let query = db
    .selectFrom('secret_versions')
    .selectAll()
    .where('key_id', 'is not', null)
    .where('key_id', '<>', currentKeyId);
  if (skip.length > 0) query = query.where('key_id', 'not in', skip);
  return query.limit(limit).execute();
}

/** Rotations whose staged value is sealed by a master key other than `currentKeyId`. */
export async function listStagedToRewrap(db: LockboxDb, currentKeyId: string) {
  return db
    .selectFrom('secret_rotations')
    .select(['id', 'staged_key_id', 'staged_wrapped_key', 'staged_ciphertext'])
    .where('staged_key_id', 'is not', null)
    .where('staged_key_id', '<>', currentKeyId)
    .execute();
}

export async function replaceStagedKey(
  db: LockboxDb,
  rotationId: string,
  keyId: string,
  next: { keyId: string; wrappedKey: Buffer },
): Promise<boolean> {
  const result = await db
    .updateTable('secret_rotations')
    .set({ staged_key_id: next.keyId, staged_wrapped_key: next.wrappedKey })
    .where('id', '=', rotationId)
    .where('staged_key_id', '=', keyId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Replaces a version's wrapped data key; false when someone else re-wrapped it first. */
export async function replaceWrappedKey(
  db: LockboxDb,
  row: { secret_id: string; version: number; key_id: string },
  next: { keyId: string; wrappedKey: Buffer },
): Promise<boolean> {
  const result = await db
    .updateTable('secret_versions')
    .set({ key_id: next.keyId, wrapped_key: next.wrappedKey })
    .where('secret_id', '=', row.secret_id)
    .where('version', '=', row.version)
    .where('key_id', '=', row.key_id)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
