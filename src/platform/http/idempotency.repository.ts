import type { Db } from '../db/transaction.js';

export type ClaimResult =
  | { state: 'claimed' }
  | { state: 'mismatch' }
  | { state: 'in_progress' }
  | { state: 'done'; statusCode: number; body: unknown };

/** Claims a key for a request, or reports what the first request with it did. */
export async function claimIdempotencyKey(
  db: Db,
  userId: string,
  key: string,
  requestHash: string,
): Promise<ClaimResult> {
  const inserted = await db
    .insertInto('idempotency_keys')
    .values({ user_id: userId, key, request_hash: requestHash })
    .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (inserted !== undefined) return { state: 'claimed' };
  const row = await db
    .selectFrom('idempotency_keys')
    .select(['request_hash', 'status_code', 'response_body'])
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .executeTakeFirst();
  if (row === undefined) return { state: 'in_progress' };
  if (row.request_hash !== requestHash) return { state: 'mismatch' };
  if (row.status_code === null) return { state: 'in_progress' };
  return { state: 'done', statusCode: row.status_code, body: row.response_body };
}

export async function completeIdempotencyKey(
  db: Db,
  userId: string,
  key: string,
  statusCode: number,
  body: unknown,
): Promise<void> {
  await db
    .updateTable('idempotency_keys')
    .set({ status_code: statusCode, response_body: JSON.stringify(body) })
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .execute();
}

export async function releaseIdempotencyKey(db: Db, userId: string, key: string): Promise<void> {
  await db
    .deleteFrom('idempotency_keys')
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .execute();
}

/** Forgets keys older than the retention window. */
export async function purgeIdempotencyKeys(db: Db, olderThan: Date): Promise<number> {
  const result = await db
    .deleteFrom('idempotency_keys')
    .where('created_at', '<', olderThan)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
