import { sql, type RawBuilder } from 'kysely';
import type { Cursor, PageRequest } from '../http/pagination.js';

/**
 * Keyset pagination, newest first, over `(created_at, id)`. The id breaks ties, so rows
 * created in the same microsecond are neither skipped nor repeated.
 */
export function afterCursor(table: string, after: Cursor): RawBuilder<boolean> {
  return sql<boolean>`(${sql.ref(`${table}.created_at`)}, ${sql.ref(`${table}.id`)}) < (${after.at}::timestamptz, ${after.id}::uuid)`;
}

/** The exact sort position of a row, selected as `cursor_at`. */
export function cursorPosition(table: string) {
  return sql<string>`to_char(${sql.ref(`${table}.created_at`)} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
    'cursor_at',
  );
}

export function fetchSize(request: PageRequest): number {
  return request.limit + 1;
}

export function rowPosition(row: { cursor_at: string; id: string }): Cursor {
  return { at: row.cursor_at, id: row.id };
}
