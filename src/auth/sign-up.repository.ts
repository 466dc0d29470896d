import { sql, type Selectable } from 'kysely';
import { joinTransaction, type Db } from '../platform/db/transaction.js';
import type { UserRow } from '../platform/db/schema.js';
import { identityDb, type PendingSignUpsTable } from './auth.tables.js';
import { insertUser } from './auth.repository.js';

export type PendingSignUpRow = Selectable<PendingSignUpsTable>;

/**
 * Whether the instance has no user yet, under the lock insertUser takes, so that two
 * sign-ups racing on an empty instance cannot both count as the first. Needs a transaction.
 */
export async function isFirstUser(trx: Db): Promise<boolean> {
  await sql`SELECT pg_advisory_xact_lock(724311002)`.execute(trx);
  const row = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
  return row === undefined;
}

/** Records a sign-up awaiting verification; its token is set when the mail goes out. */
export async function insertPendingSignUp(
  db: Db,
  signUp: { email: string; name: string; passwordHash: string; expiresAt: Date },
): Promise<string> {
  const row = await identityDb(db)
    .insertInto('pending_sign_ups')
    .values({
      email: signUp.email,
      name: signUp.name,
      password_hash: signUp.passwordHash,
      expires_at: signUp.expiresAt,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Gives an unredeemed sign-up a new token (replacing any earlier one, whose link then stops
 * working). Returns the sign-up's email, or undefined when it is gone or already redeemed.
 */
export async function setSignUpToken(
  db: Db,
  id: string,
  token: { hash: string; expiresAt: Date },
): Promise<string | undefined> {
  const row = await identityDb(db)
    .updateTable('pending_sign_ups')
    .set({ token_hash: token.hash, expires_at: token.expiresAt })
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .returning('email')
    .executeTakeFirst();
  return row?.email;
}

export type RedeemOutcome =
  | { outcome: 'created'; user: UserRow }
  | { outcome: 'account_exists'; email: string }
  | { outcome: 'invalid'; reason: 'unknown' | 'used' | 'expired' };

/**
 * Spends a sign-up token and creates its user, in one transaction: only the first caller
 * gets 'created'. A token already spent, past its expiry or never issued is 'invalid'; a
 * sign-up whose address got an account meanwhile (an admin, single sign-on, another sign-up)
 * is 'account_exists' and creates nothing.
 */
export async function redeemSignUpToken(db: Db, tokenHash: string): Promise<RedeemOutcome> {
  return joinTransaction(db, async (trx): Promise<RedeemOutcome> => {
    const signUp = await identityDb(trx)
      .updateTable('pending_sign_ups')
      .set({ used_at: sql`now()` })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
    if (signUp === undefined)
      return { outcome: 'invalid', reason: await whyInvalid(trx, tokenHash) };
    const user = await insertUser(trx, {
      email: signUp.email,
      name: signUp.name,
      passwordHash: signUp.password_hash,
    });
    if (user === undefined) return { outcome: 'account_exists', email: signUp.email };
    return { outcome: 'created', user };
  });
}

async function whyInvalid(db: Db, tokenHash: string): Promise<'unknown' | 'used' | 'expired'> {
  const row = await identityDb(db)
    .selectFrom('pending_sign_ups')
    .select(['used_at'])
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst();
  if (row === undefined) return 'unknown';
  return row.used_at === null ? 'expired' : 'used';
}
