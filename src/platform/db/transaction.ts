import type { Kysely, Transaction } from 'kysely';
import type { Schema } from './schema.js';

export type Db = Kysely<Schema>;
export type Trx = Transaction<Schema>;

/** Raised when a rollback fails after the work failed; both causes are kept. */
export class RollbackFailedError extends AggregateError {
  constructor(workError: unknown, rollbackError: unknown) {
    super([workError, rollbackError], 'transaction rollback failed after an error', {
      cause: workError,
    });
    this.name = 'RollbackFailedError';
  }
}

/**
 * Runs `work` in a transaction: commits when it resolves, rolls back when it throws. A failed
 * commit rejects with the commit's error; a failed rollback rejects with RollbackFailedError
 * carrying both the work's error and the rollback's.
 */
export async function inTransaction<T>(db: Db, work: (trx: Trx) => Promise<T>): Promise<T> {
  const trx = await db.startTransaction().execute();
  let result: T;
  try {
    result = await work(trx);
  } catch (workError) {
    try {
      await trx.rollback().execute();
    } catch (rollbackError) {
      throw new RollbackFailedError(workError, rollbackError);
    }
    throw workError;
  }
  try {
    await trx.commit().execute();
  } catch (commitError) {
    // Kysely keeps the connection of a transaction whose COMMIT failed (the connection broke, or
    // the answer never came) until it is rolled back; without this the pool would lose it for
    // good, and closing the pool would wait for it forever. A rollback that fails as well
    // discards the connection; the commit's error is what the caller needs.
    await trx
      .rollback()
      .execute()
      .catch(() => undefined);
    throw commitError;
  }
  return result;
}

/**
 * Runs `work` in `db` itself when it already is a transaction (the caller's, which commits or
 * rolls back), else in a new one through inTransaction. A repository function that needs
 * atomicity can so also take part in a caller's transaction, e.g. one that records the
 * change's audit event.
 */
export async function joinTransaction<T>(db: Db, work: (trx: Trx) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Trx) : inTransaction(db, work);
}
