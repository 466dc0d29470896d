import type { PostgresCursor, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/** The message of the error pg fails a query with when it outlives `query_timeout`. */
const QUERY_READ_TIMEOUT = 'Query read timeout';

export function isQueryTimeout(error: unknown): error is Error {
  return error instanceof Error && error.message === QUERY_READ_TIMEOUT;
}

/**
 * A pooled connection checked out for one user, which is never handed back to the pool after
 * one of its queries timed out on the client side.
 *
 * When a query outlives pg's `query_timeout`, pg fails the query but the connection still
 * waits for its answer: every later query on it queues behind one that may never come back
 * (the server is gone, or the connection was cut without being closed). Kysely's
 * PostgresDialect releases a client after a failed query as healthy (it discards one only
 * when a rollback fails), and the pool would then lend it out again. So on a timeout this
 * closes the connection at once (pg destroys the socket of a connection with a query in
 * flight), which fails whatever else is sent on it straight away, and `release` tells the
 * pool to drop the client rather than keep it.
 */
export class DiscardingClient implements PostgresPoolClient {
  #timedOut: Error | undefined;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly onTimeout: (error: Error) => void,
  ) {}

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(
    sql: string | PostgresCursor<R>,
    parameters: ReadonlyArray<unknown> = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // Switchyard configures no cursor: Kysely only ever sends text with parameters.
    if (typeof sql !== 'string') throw new Error('cursors are not supported');
    // pg types rows loosely and names the command as any string; the rows are what Kysely asked for.
    return this.watch(this.client.query(sql, [...parameters])) as unknown as Promise<
      PostgresQueryResult<R>
    >;
  }

  /** Sends a script of several statements (no parameters); pg answers one result per statement. */
  queryScript(text: string): Promise<unknown> {
    return this.watch(this.client.query(text));
  }

  /** Returns the client to the pool, or has the pool drop it (timed out, or `destroy`). */
  release(destroy = false): void {
    this.client.release(this.#timedOut ?? destroy);
  }

  private async watch<T>(pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (error) {
      if (isQueryTimeout(error) && this.#timedOut === undefined) {
        this.#timedOut = error;
        this.onTimeout(error);
        this.client.end().catch(() => undefined);
      }
      throw error;
    }
  }
}
