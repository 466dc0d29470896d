import { sql } from 'kysely';
import type { PageRequest } from '../platform/http/pagination.js';
import type { Sealed } from './secret-crypto.js';
import type {
  LockboxDb,
  LockboxTrx,
  RotationRow,
  RotationState,
  RotationTargetRow,
} from './secret.tables.js';

const FINISHED: RotationState[] = ['succeeded', 'rolled_back'];

export async function hasRunningRotation(
  db: LockboxDb | LockboxTrx,
  secretId: string,
): Promise<boolean> {
  const row = await db
    .selectFrom('secret_rotations')
    .select('id')
    .where('secret_id', '=', secretId)
    .where('state', 'not in', FINISHED)
    .executeTakeFirst();
  return row !== undefined;
}

/** Records a requested rotation; undefined when another rotation of the secret is unfinished. */
export async function insertRotation(
  trx: LockboxTrx,
  input: {
    id: string;
    secretId: string;
    staged: Sealed | undefined;
    generateBytes: number | undefined;
    requestedBy: string;
  },
): Promise<RotationRow | undefined> {
  return trx
    .insertInto('secret_rotations')
    .values({
      id: input.id,
      secret_id: input.secretId,
      staged_key_id: input.staged?.keyId ?? null,
      staged_wrapped_key: input.staged?.wrappedKey ?? null,
      staged_ciphertext: input.staged?.ciphertext ?? null,
      generate_bytes: input.generateBytes ?? null,
      requested_by: input.requestedBy,
    })
    .onConflict((oc) => oc.doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findRotation(db: LockboxDb, id: string): Promise<RotationRow | undefined> {
  return db.selectFrom('secret_rotations').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Unfinished rotations whose runner has not renewed its heartbeat for `leaseMs`, judged by the
 * database's clock (runners on other machines write it, so no local clock is compared).
 */
export async function listAbandonedRotationIds(db: LockboxDb, leaseMs: number): Promise<string[]> {
  const rows = await db
    .selectFrom('secret_rotations')
    .select('id')
    .where('state', 'not in', FINISHED)
    .where('runner', 'is not', null)
    .where(sql<boolean>`heartbeat_at < now() - make_interval(secs => ${leaseMs / 1000})`)
    .orderBy('created_at')
    .execute();
  return rows.map((row) => row.id);
}

/** Renews `runner`'s hold on an unfinished rotation; false when it holds it no longer. */
export async function beatRotation(db: LockboxDb, id: string, runner: string): Promise<boolean> {
  const row = await db
    .updateTable('secret_rotations')
    .set({ heartbeat_at: sql`now()` })
    .where('id', '=', id)
    .where('runner', '=', runner)
    .where('state', 'not in', FINISHED)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

export async function listUnfinishedRotationIds(db: LockboxDb): Promise<string[]> {
  const rows = await db
    .selectFrom('secret_rotations')
    .select('id')
    .where('state', 'not in', FINISHED)
    .orderBy('created_at')
    .execute();
  return rows.map((row) => row.id);
}

/**
 * Takes the rotation for `runner` if it is unfinished and still held by `observedRunner`
 * (the holder the caller judged gone, or null). Records the secret's current version as the
 * one to return to, the first time. With `expiredForMs`, only while its heartbeat is still
 * that old (the holder may have renewed it since it was judged gone). Undefined when someone
 * else got there first.
 */
export async function claimRotation(
  db: LockboxDb,
  id: string,
  runner: string,
  observedRunner: string | null,
  expiredForMs?: number,
): Promise<RotationRow | undefined> {
  const query = db
    .updateTable('secret_rotations')
    .set({
      runner,
      heartbeat_at: sql`now()`,
      updated_at: sql`now()`,
      previous_version: sql`coalesce(previous_version, (SELECT current_version FROM secrets WHERE secrets.id = secret_rotations.secret_id))`,
    })
    .where('id', '=', id)
    .where('state', 'not in', FINISHED)
    .where(sql<boolean>`runner IS NOT DISTINCT FROM ${observedRunner}`);
  const expired =
    expiredForMs === undefined
      ? query
      : query.where(
          sql<boolean>`heartbeat_at < now() - make_interval(secs => ${expiredForMs / 1000})`,
        );
  return expired.returningAll().executeTakeFirst();
}

/** Moves the rotation on, as `runner`; undefined when the runner lost its claim. */
export async function advanceRotation(
  db: LockboxDb | LockboxTrx,
  id: string,
  runner: string,
  changes: {
    state?: RotationState;
    newVersion?: number;
    failureReason?: string;
    clearStaged?: boolean;
    finished?: boolean;
  },
): Promise<RotationRow | undefined> {
  return db
    .updateTable('secret_rotations')
    .set({
      ...(changes.state === undefined ? {} : { state: changes.state }),
      ...(changes.newVersion === undefined ? {} : { new_version: changes.newVersion }),
      ...(changes.failureReason === undefined ? {} : { failure_reason: changes.failureReason }),
      ...(changes.clearStaged === true
        ? { staged_key_id: null, staged_wrapped_key: null, staged_ciphertext: null }
        : {}),
      ...(changes.finished === true ? { finished_at: sql`now()` } : {}),
      heartbeat_at: sql`now()`,
      updated_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('runner', '=', runner)
    .returningAll()
    .executeTakeFirst();
}

export async function listTargets(
  db: LockboxDb | LockboxTrx,
  rotationId: string,
): Promise<RotationTargetRow[]> {
  return db
    .selectFrom('secret_rotation_targets')
    .selectAll()
    .where('rotation_id', '=', rotationId)
    .orderBy('service_id')
    .orderBy('environment_id')
    .execute();
}

export async function insertTargets(trx: LockboxTrx, rows: RotationTargetRow[]): Promise<void> {
  if (rows.length === 0) return;
  await trx
    .insertInto('secret_rotation_targets')
    .values(rows)
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export async function setTargetDeployment(
  db: LockboxDb | LockboxTrx,
  target: RotationTargetRow,
  field: 'new_deployment_id' | 'restore_deployment_id',
  deploymentId: string,
): Promise<void> {
  await db
    .updateTable('secret_rotation_targets')
    .set({ [field]: deploymentId })
    .where('rotation_id', '=', target.rotation_id)
    .where('service_id', '=', target.service_id)
    .where('environment_id', '=', target.environment_id)
    .execute();
}

type RotationPageRow = RotationRow & { cursor_at: string };

function pageQuery(db: LockboxDb, page: PageRequest) {
  let query = db
    .selectFrom('secret_rotations')
    .selectAll('secret_rotations')
    .select(
      sql<string>`to_char(secret_rotations.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
        'cursor_at',
      ),
    );
  if (page.after !== undefined) {
    query = query.where(
      sql<boolean>`(secret_rotations.created_at, secret_rotations.id) < (${page.after.at}::timestamptz, ${page.after.id}::uuid)`,
    );
  }
  return query
    .orderBy('secret_rotations.created_at', 'desc')
    .orderBy('secret_rotations.id', 'desc')
    .limit(page.limit + 1);
}

export async function listRotationsOfSecret(
  db: LockboxDb,
  secretId: string,
  page: PageRequest,
): Promise<RotationPageRow[]> {
  return pageQuery(db, page).where('secret_rotations.secret_id', '=', secretId).execute();
}

/** Rotations of the service's own secrets and rotations that rolled its deployments. */
export async function listRotationsOfService(
  db: LockboxDb,
  serviceId: string,
  page: PageRequest,
): Promise<RotationPageRow[]> {
  return pageQuery(db, page)
    .where((eb) =>
      eb.or([
        eb(
          'secret_rotations.secret_id',
          'in',
          eb.selectFrom('secrets').select('id').where('service_id', '=', serviceId),
        ),
        eb(
          'secret_rotations.id',
          'in',
          eb
            .selectFrom('secret_rotation_targets')
            .select('rotation_id')
            .where('service_id', '=', serviceId),
        ),
      ]),
    )
    .execute();
}

export async function listTargetsOf(
  db: LockboxDb,
  rotationIds: string[],
): Promise<RotationTargetRow[]> {
  if (rotationIds.length === 0) return [];
  return db
    .selectFrom('secret_rotation_targets')
    .selectAll()
    .where('rotation_id', 'in', rotationIds)
    .execute();
}

export interface LiveDeploymentUsing {
  id: string;
  service_id: string;
  environment_id: string;
  release_id: string;
  replicas: number;
  versions: Record<string, number>;
}

/** Live deployments whose pinned versions include the secret: the ones a rotation rolls. */
export async function listLiveDeploymentsUsing(
  db: LockboxDb | LockboxTrx,
  secretId: string,
): Promise<LiveDeploymentUsing[]> {
  return db
    .selectFrom('deployments as d')
    .innerJoin('deployment_secrets as ds', 'ds.deployment_id', 'd.id')
    .select([
      'd.id',
      'd.service_id',
      'd.environment_id',
      'd.release_id',
      'd.replicas',
      'ds.versions',
    ])
    .where('d.status', '=', 'live')
    .where(sql<boolean>`ds.versions ? ${secretId}`)
    .orderBy('d.created_at')
    .execute();
}
