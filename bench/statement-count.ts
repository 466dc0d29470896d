import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

type Query = (...args: unknown[]) => unknown;

/** The prototype that defines `query` itself (PGlite inherits it from a base class). */
function ownerOfQuery(prototype: object): { query: Query } {
  let current: object | null = prototype;
  while (current !== null) {
    if (Object.hasOwn(current, 'query')) return current as { query: Query };
    current = Object.getPrototypeOf(current) as object | null;
  }
  throw new Error('no query method found');
}

/**
 * How many SQL statements `work` sends, on either backend: counts calls to the drivers' own
 * `query` (what Kysely's dialects call) while it runs. Diagnostic only; restores them after.
 */
export async function countStatements(work: () => Promise<void>): Promise<number> {
  const owners = [ownerOfQuery(pg.Client.prototype), ownerOfQuery(PGlite.prototype)];
  const originals = owners.map((owner) => owner.query);
  let count = 0;
  owners.forEach((owner, index) => {
    const original = originals[index];
    if (original === undefined) return;
    owner.query = function counted(this: unknown, ...args: unknown[]) {
      count += 1;
      return original.apply(this, args);
    };
  });
  try {
    await work();
    return count;
  } finally {
    owners.forEach((owner, index) => {
      const original = originals[index];
      if (original !== undefined) owner.query = original;
    });
  }
}
