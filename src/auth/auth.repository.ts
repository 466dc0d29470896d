import { sql } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import type { UserRow } from '../platform/db/schema.js';

export async function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Inserts a user; the first account of the instance becomes its admin. Serialised by a
 * transaction-level advisory lock so two first registrations cannot both become admin.
 */
export async function insertUser(
  db: Db,
  user: { email: string; name: string; passwordHash: string },
): Promise<UserRow | undefined> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(724311002)`.execute(trx);
    const existing = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    return trx
      .insertInto('users')
      .values({
        email: user.email,
        name: user.name,
        password_hash: user.passwordHash,
        is_instance_admin: existing === undefined,
      })
      .onConflict((oc) => oc.column('email').doNothing())
      .returningAll()
      .executeTakeFirst();
  });
}

export async function insertSession(
  db: Db,
  session: {
    userId: string;
    familyId: string;
    refreshTokenHash: string;
    expiresAt: Date;
    userAgent: string | undefined;
    clientIp: string;
  },
): Promise<{ id: string }> {
  return db
    .insertInto('sessions')
    .values({
      user_id: session.userId,
      family_id: session.familyId,
      refresh_token_hash: session.refreshTokenHash,
      expires_at: session.expiresAt,
      user_agent: session.userAgent ?? null,
      client_ip: session.clientIp,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

/**
 * Marks a refresh token used, atomically: returns the session only to the first caller.
 * A second use finds `used_at` set and gets undefined with `wasReused: true`.
 */
export async function consumeRefreshToken(
  db: Db,
  hash: string,
): Promise<
  | { outcome: 'ok'; userId: string; familyId: string }
  | { outcome: 'reused'; familyId: string; userId: string }
  | { outcome: 'invalid' }
> {
  const consumed = await db
    .updateTable('sessions')
    .set({ used_at: new Date() })
    .where('refresh_token_hash', '=', hash)
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', new Date())
    .returning(['user_id', 'family_id'])
    .executeTakeFirst();
  if (consumed !== undefined) {
    return { outcome: 'ok', userId: consumed.user_id, familyId: consumed.family_id };
  }
  const spent = await db
    .selectFrom('sessions')
    .select(['user_id', 'family_id', 'used_at'])
    .where('refresh_token_hash', '=', hash)
    .executeTakeFirst();
  if (spent?.used_at != null) {
    return { outcome: 'reused', familyId: spent.family_id, userId: spent.user_id };
  }
  return { outcome: 'invalid' };
}

export async function revokeFamily(db: Db, familyId: string): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ revoked_at: new Date() })
    .where('family_id', '=', familyId)
    .where('revoked_at', 'is', null)
    .execute();
}

export async function revokeAccessToken(db: Db, jti: string, expiresAt: Date): Promise<void> {
  await db
    .insertInto('revoked_tokens')
    .values({ jti, expires_at: expiresAt })
    .onConflict((oc) => oc.column('jti').doNothing())
    .execute();
}

/** The caller's standing for one request: undefined when the user no longer exists. */
export async function findPrincipal(
  db: Db,
  userId: string,
  tokenId: string,
  familyId: string,
): Promise<
  { id: string; email: string; name: string; isInstanceAdmin: boolean; status: string; isRevoked: boolean } | undefined
> {
  const row = await db
    .selectFrom('users')
    .select((eb) => [
      'users.id',
      'users.email',
      'users.name',
      'users.is_instance_admin',
      'users.status',
      eb
        .or([
          eb.exists(eb.selectFrom('revoked_tokens').select('jti').where('jti', '=', tokenId)),
          eb.not(
            eb.exists(
              eb
                .selectFrom('sessions')
                .select('id')
                .where('family_id', '=', familyId)
                .where('revoked_at', 'is', null),
            ),
          ),
        ])
        .as('is_revoked'),
    ])
    .where('users.id', '=', userId)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    isInstanceAdmin: row.is_instance_admin,
    status: row.status,
    isRevoked: Boolean(row.is_revoked),
  };
}
