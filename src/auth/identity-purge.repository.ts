import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../platform/db/transaction.js';

/** The identity rows the purge job deletes once past their retention. */
export type PurgeTarget =
  'refresh_tokens' | 'sessions' | 'sign_up_tokens' | 'denials' | 'sign_in_failures';

export const PURGE_TARGETS: readonly PurgeTarget[] = [
  // Refresh tokens before sessions: deleting a session cascades to all of its tokens at once.
  'refresh_tokens',
  'sessions',
  'sign_up_tokens',
  'denials',
  'sign_in_failures',
];

export interface PurgeCutoffs {
  /** Expired or revoked longer ago than this. */
  retentionDays: number;
  signInFailureHours: number;
}

function victims(target: PurgeTarget, cutoffs: PurgeCutoffs, limit: number): RawBuilder<unknown> {
  const before = sql`now() - make_interval(days => ${cutoffs.retentionDays})`;
  switch (target) {
    // A spent token is kept while it could still be presented (reuse detection); once expired
    // it is refused anyway.
    case 'refresh_tokens':
      return sql`DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions WHERE expires_at < ${before} LIMIT ${limit})`;
    case 'sessions':
      return sql`DELETE FROM user_sessions WHERE id IN (
        SELECT id FROM user_sessions WHERE expires_at < ${before} OR revoked_at < ${before}
        LIMIT ${limit})`;
    case 'sign_up_tokens':
      return sql`DELETE FROM pending_sign_ups WHERE id IN (
        SELECT id FROM pending_sign_ups WHERE expires_at < ${before} OR used_at < ${before}
        LIMIT ${limit})`;
    // A denial past its expiry denies nothing: the token or session it names is dead.
    case 'denials':
      return sql`DELETE FROM auth_denials WHERE (kind, subject) IN (
        SELECT kind, subject FROM auth_denials WHERE expires_at < now() - interval '1 minute'
        LIMIT ${limit})`;
    case 'sign_in_failures':
      return sql`DELETE FROM sign_in_failures WHERE account_key IN (
        SELECT account_key FROM sign_in_failures
        WHERE last_failed_at < now() - make_interval(hours => ${cutoffs.signInFailureHours})
          AND (locked_until IS NULL OR locked_until < now())
        LIMIT ${limit})`;
  }
}

/** Deletes at most `limit` rows of the target past retention; returns how many went. */
export async function purgeBatch(
  db: Db,
  target: PurgeTarget,
  cutoffs: PurgeCutoffs,
  limit: number,
): Promise<number> {
  const result = await victims(target, cutoffs, limit).execute(db);
  return Number(result.numAffectedRows ?? 0n);
}
