import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { AppError } from '../errors.js';

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type PageQuery = Static<typeof PageQuery>;

export const pageOf = <T extends TSchema>(item: T) =>
  Type.Object({ data: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) });

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** A keyset position: the sort timestamp and the unique id that breaks ties. */
export interface Cursor {
  /** ISO-8601 UTC with microseconds, as PostgreSQL stores it (a JS Date would round). */
  at: string;
  id: string;
}

export interface PageRequest {
  limit: number;
  after: Cursor | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.at}|${cursor.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(raw: string): Cursor {
  const [at, id, extra] = Buffer.from(raw, 'base64url').toString('utf8').split('|');
  const isValid =
    extra === undefined &&
    at !== undefined &&
    TIMESTAMP.test(at) &&
    !Number.isNaN(Date.parse(at)) &&
    id !== undefined &&
    UUID.test(id);
  if (!isValid) throw new AppError('INVALID_CURSOR', 'The cursor is not one this API issued');
  return { at, id };
}

/** Turns `?limit=&cursor=` into a page request with the default and bounds applied. */
export function toPageRequest(query: PageQuery): PageRequest {
  const limit = query.limit ?? 20;
  // The validator coerces `limit=1e400` to Infinity and then skips its minimum and maximum.
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100) {
    throw new AppError('VALIDATION_FAILED', 'limit must be an integer from 1 to 100', {
      details: [{ in: 'querystring', path: '/limit', message: 'must be an integer from 1 to 100' }],
    });
  }
  return {
    limit,
    after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
  };
}

/**
 * Finishes a page from rows fetched with `limit + 1`: the extra row only says whether
 * another page exists. `position` reads a row's sort key.
 */
export function toPage<Row, Item>(
  rows: Row[],
  request: PageRequest,
  position: (row: Row) => Cursor,
  map: (row: Row) => Item,
): Page<Item> {
  const hasMore = rows.length > request.limit;
  const pageRows = hasMore ? rows.slice(0, request.limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    data: pageRows.map(map),
    nextCursor: hasMore && last !== undefined ? encodeCursor(position(last)) : null,
  };
}
