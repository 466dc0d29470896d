import { sql } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import type { PageRequest } from '../platform/http/pagination.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import { identityDb, type ApiTokenRow, type Scope } from './auth.tables.js';

// last_used_at is written at most this often per token, so a busy token costs no write per call.
const TOUCH_INTERVAL_SECONDS = 60;

export async function insertApiToken(
  db: Db,
  token: {
    userId: string;
    name: string;
    tokenHash: string;
    displayPrefix: string;
    scopes: Scope[];
    projectId: string | null;
    expiresAt: Date;
  },
): Promise<ApiTokenRow> {
  return identityDb(db)
    .insertInto('api_tokens')
    .values({
      user_id: token.userId,
      name: token.name,
      token_hash: token.tokenHash,
      display_prefix: token.displayPrefix,
      scopes: token.scopes,
      project_id: token.projectId,
      expires_at: token.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The user's tokens that were not revoked (expired ones included), newest first. */
export async function listApiTokens(db: Db, userId: string, page: PageRequest) {
  let query = identityDb(db)
    .selectFrom('api_tokens')
    .selectAll()
    .select(cursorPosition('api_tokens'))
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (page.after !== undefined) query = query.where(afterCursor('api_tokens', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

/** Revokes one of the user's tokens; false when it is not theirs or already revoked. */
export async function revokeApiToken(db: Db, userId: string, id: string): Promise<boolean> {
  const result = await identityDb(db)
    .updateTable('api_tokens')
    .set({ revoked_at: sql`now()` })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** A token that may be used now: not revoked, not expired, its owner active. */
export async function findUsableApiToken(db: Db, tokenHash: string) {
  return identityDb(db)
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id',
      'api_tokens.user_id',
      'api_tokens.scopes',
      'api_tokens.project_id',
      'api_tokens.last_used_at',
      'users.is_instance_admin',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .where('api_tokens.revoked_at', 'is', null)
    .where('api_tokens.expires_at', '>', sql<Date>`now()`)
    .where('users.status', '=', 'active')
    .executeTakeFirst();
}

export async function touchApiToken(db: Db, id: string): Promise<void> {
  await identityDb(db)
    .updateTable('api_tokens')
    .set({ last_used_at: sql`now()` })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('last_used_at', 'is', null),
        eb(
          'last_used_at',
          '<',
          sql<Date>`now() - make_interval(secs => ${TOUCH_INTERVAL_SECONDS})`,
        ),
      ]),
    )
    .execute();
}

export function isStale(lastUsedAt: Date | null, now = new Date()): boolean {
  return (
    lastUsedAt === null || now.getTime() - lastUsedAt.getTime() > TOUCH_INTERVAL_SECONDS * 1000
  );
}
