import { sql } from 'kysely';
import { joinTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import { claimInvitations } from '../projects/invitation.repository.js';
import type { UserRow } from '../platform/db/schema.js';
import type { PageRequest } from '../platform/http/pagination.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import {
  identityDb,
  type IdentityDb,
  type RevokeReason,
  type SessionMethod,
  type SessionTransport,
  type UserSessionRow,
} from './auth.tables.js';

export async function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Serialises account creation (and member invitations, which must see every account). */
export async function lockAccountCreation(trx: Trx): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(724311002)`.execute(trx);
}

/**
 * Inserts a user; the first account of the instance becomes its admin. Serialised by a
 * transaction-level advisory lock so two first registrations cannot both become admin.
 * Pending invitations to the address become memberships in the same transaction: this is
 * where every account (sign-up, verified sign-up, admin, single sign-on) becomes active.
 * Returns undefined when the email is taken. Joins the caller's transaction when `db` is
 * one (a redeemed sign-up token and its user commit together).
 */
export async function insertUser(
  db: Db,
  user: { email: string; name: string; passwordHash: string },
): Promise<UserRow | undefined> {
  return joinTransaction(db, async (trx) => {
    await lockAccountCreation(trx);
    const existing = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    const created = await trx
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
    if (created !== undefined) await claimInvitations(trx, created);
    return created;
  });
}

export async function updatePasswordHash(
  db: Db,
  userId: string,
  passwordHash: string,
): Promise<void> {
  await db
    .updateTable('users')
    .set({ password_hash: passwordHash, updated_at: sql`now()` })
    .where('id', '=', userId)
    .execute();
}

/**
 * Sets a user's status. Disabling the last active instance admin is refused (returns
 * 'last_admin'); the admin rows are locked so two concurrent disables cannot both pass.
 */
export async function setUserStatus(
  db: Db,
  userId: string,
  status: 'active' | 'disabled',
): Promise<UserRow | 'last_admin' | undefined> {
  return db.transaction().execute(async (trx) => {
    const admins = await trx
      .selectFrom('users')
      .select('id')
      .where('is_instance_admin', '=', true)
      .where('status', '=', 'active')
      .forUpdate()
      .execute();
    const isLastAdmin = admins.length === 1 && admins[0]?.id === userId;
    if (status === 'disabled' && isLastAdmin) return 'last_admin';
    return trx
      .updateTable('users')
      .set({ status, updated_at: sql`now()` })
      .where('id', '=', userId)
      .returningAll()
      .executeTakeFirst();
  });
}

export async function listUsers(db: Db, page: PageRequest) {
  let query = db.selectFrom('users').selectAll().select(cursorPosition('users'));
  if (page.after !== undefined) query = query.where(afterCursor('users', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

export interface NewSession {
  id: string;
  userId: string;
  method: SessionMethod;
  transport: SessionTransport;
  csrfTokenHash: string | null;
  userAgent: string | undefined;
  clientIp: string;
  expiresAt: Date;
}

/** Records a sign-in and its first refresh token, in one transaction. */
export async function insertSession(
  db: Db,
  session: NewSession,
  refreshTokenHash: string,
): Promise<void> {
  await identityDb(db)
    .transaction()
    .execute(async (trx) => {
      await trx
        .insertInto('user_sessions')
        .values({
          id: session.id,
          user_id: session.userId,
          method: session.method,
          transport: session.transport,
          csrf_token_hash: session.csrfTokenHash,
          user_agent: session.userAgent ?? null,
          client_ip: session.clientIp,
          expires_at: session.expiresAt,
        })
        .execute();
      await trx
        .insertInto('sessions')
        .values({
          user_id: session.userId,
          family_id: session.id,
          refresh_token_hash: refreshTokenHash,
          expires_at: session.expiresAt,
          user_agent: session.userAgent ?? null,
          client_ip: session.clientIp,
        })
        .execute();
    });
}

/** The session a refresh token belongs to, spent or not; undefined for unknown tokens. */
export async function findSessionByRefreshToken(
  db: Db,
  hash: string,
): Promise<UserSessionRow | undefined> {
  return identityDb(db)
    .selectFrom('sessions')
    .innerJoin('user_sessions', 'user_sessions.id', 'sessions.family_id')
    .selectAll('user_sessions')
    .where('sessions.refresh_token_hash', '=', hash)
    .executeTakeFirst();
}

export type RefreshOutcome =
  | { outcome: 'ok'; session: UserSessionRow }
  | { outcome: 'reused'; sessionId: string; userId: string }
  | { outcome: 'invalid' };

/**
 * Spends a refresh token and stores its successor, atomically: only the first caller gets
 * 'ok'. A token already spent answers 'reused' (the caller revokes the session); an unknown,
 * expired or revoked one answers 'invalid'.
 */
export async function rotateRefreshToken(
  db: Db,
  hash: string,
  next: { hash: string; expiresAt: Date; userAgent: string | undefined; clientIp: string },
): Promise<RefreshOutcome> {
  return identityDb(db)
    .transaction()
    .execute(async (trx): Promise<RefreshOutcome> => {
      const spent = await trx
        .updateTable('sessions')
        .set({ used_at: new Date() })
        .where('refresh_token_hash', '=', hash)
        .where('used_at', 'is', null)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', new Date())
        .returning(['user_id', 'family_id'])
        .executeTakeFirst();
      if (spent === undefined) return findSpentToken(trx, hash);
      const session = await trx
        .updateTable('user_sessions')
        .set({
          last_used_at: new Date(),
          expires_at: next.expiresAt,
          user_agent: next.userAgent ?? null,
          client_ip: next.clientIp,
        })
        .where('id', '=', spent.family_id)
        .where('revoked_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (session === undefined) return { outcome: 'invalid' };
      await trx
        .insertInto('sessions')
        .values({
          user_id: spent.user_id,
          family_id: spent.family_id,
          refresh_token_hash: next.hash,
          expires_at: next.expiresAt,
          user_agent: next.userAgent ?? null,
          client_ip: next.clientIp,
        })
        .execute();
      return { outcome: 'ok', session };
    });
}

async function findSpentToken(db: IdentityDb, hash: string): Promise<RefreshOutcome> {
  const row = await db
    .selectFrom('sessions')
    .select(['user_id', 'family_id', 'used_at'])
    .where('refresh_token_hash', '=', hash)
    .executeTakeFirst();
  if (row?.used_at != null)
    return { outcome: 'reused', sessionId: row.family_id, userId: row.user_id };
  return { outcome: 'invalid' };
}

/**
 * Revokes sessions (and their refresh tokens): the listed ones, or every live one of the
 * user except `exceptSessionId`. Returns the ids it revoked.
 */
export async function revokeSessions(
  db: Db,
  target: { userId: string; sessionIds?: readonly string[]; exceptSessionId?: string },
  reason: RevokeReason,
): Promise<string[]> {
  if (target.sessionIds !== undefined && target.sessionIds.length === 0) return [];
  return identityDb(db)
    .transaction()
    .execute(async (trx) => {
      let query = trx
        .updateTable('user_sessions')
        .set({ revoked_at: new Date(), revoked_reason: reason })
        .where('user_id', '=', target.userId)
        .where('revoked_at', 'is', null);
      if (target.sessionIds !== undefined) query = query.where('id', 'in', target.sessionIds);
      if (target.exceptSessionId !== undefined)
        query = query.where('id', '<>', target.exceptSessionId);
      const revoked = (await query.returning('id').execute()).map((row) => row.id);
      if (revoked.length > 0) {
        await trx
          .updateTable('sessions')
          .set({ revoked_at: new Date() })
          .where('family_id', 'in', revoked)
          .where('revoked_at', 'is', null)
          .execute();
      }
      return revoked;
    });
}

/** The user's live sessions, newest first. */
export async function listSessions(db: Db, userId: string, page: PageRequest) {
  let query = identityDb(db)
    .selectFrom('user_sessions')
    .selectAll()
    .select(cursorPosition('user_sessions'))
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', new Date());
  if (page.after !== undefined) query = query.where(afterCursor('user_sessions', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

export async function findSession(db: Db, sessionId: string): Promise<UserSessionRow | undefined> {
  return identityDb(db)
    .selectFrom('user_sessions')
    .selectAll()
    .where('id', '=', sessionId)
    .executeTakeFirst();
}

/**
 * One more failed sign-in for the account name; returns the count in the current streak.
 * Idle rows are deleted by the identity purge job (identity-purge.repository.ts).
 */
export async function addSignInFailure(db: Db, accountKey: string): Promise<number> {
  const row = await identityDb(db)
    .insertInto('sign_in_failures')
    .values({ account_key: accountKey, failures: 1, last_failed_at: sql`now()` })
    .onConflict((oc) =>
      oc.column('account_key').doUpdateSet({
        // A day without failures starts a new streak.
        failures: sql`CASE WHEN sign_in_failures.last_failed_at < now() - interval '1 day' THEN 1 ELSE sign_in_failures.failures + 1 END`,
        last_failed_at: sql`now()`,
      }),
    )
    .returning('failures')
    .executeTakeFirstOrThrow();
  return row.failures;
}

export async function lockAccount(db: Db, accountKey: string, seconds: number): Promise<void> {
  await identityDb(db)
    .updateTable('sign_in_failures')
    .set({ locked_until: sql`now() + make_interval(secs => ${seconds})` })
    .where('account_key', '=', accountKey)
    .execute();
}

/** Seconds the account name stays locked (0 when it is not). */
export async function lockedForSeconds(db: Db, accountKey: string): Promise<number> {
  const row = await identityDb(db)
    .selectFrom('sign_in_failures')
    .select(sql<number>`ceil(extract(epoch from (locked_until - now())))::int`.as('seconds'))
    .where('account_key', '=', accountKey)
    .where('locked_until', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row === undefined ? 0 : Number(row.seconds);
}

export async function clearSignInFailures(db: Db, accountKey: string): Promise<void> {
  await identityDb(db)
    .deleteFrom('sign_in_failures')
    .where('account_key', '=', accountKey)
    .execute();
}
