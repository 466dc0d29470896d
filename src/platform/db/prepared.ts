import type { Compilable, CompiledQuery, QueryResult } from 'kysely';
import pg from 'pg';

/**
 * Prepared statements for the hottest lookups (a resource joined with the caller's grant,
 * sent by nearly every request). PostgreSQL parses and plans a three-table join in several
 * times the CPU it takes to run it; a named statement is parsed and planned once per
 * connection, then only bound and run.
 *
 * Only queries whose SQL text never varies belong here (no IN lists, no optional clauses): each
 * distinct text stays prepared on every pooled connection until the connection closes. Past
 * MAX_PREPARED texts, further ones run unprepared. PGlite ignores the names.
 */
const MAX_PREPARED = 64;
const names = new Map<string, string>();

// A column added to a table behind `table.*` while a statement is prepared (another replica's
// migration during a rolling upgrade) makes PostgreSQL refuse to run the old plan.
const isResultTypeChange = (error: unknown) =>
  (error as { code?: unknown }).code === '0A000' &&
  (error as Error).message === 'cached plan must not change result type';

/** Runs `query` as a named prepared statement on PostgreSQL; resolves its rows. */
export async function executePrepared<R>(
  db: { executeQuery<O>(query: CompiledQuery<O>): Promise<QueryResult<O>> },
  query: Compilable<R>,
): Promise<R[]> {
  const compiled = query.compile();
  if (!names.has(compiled.sql) && names.size < MAX_PREPARED) {
    names.set(compiled.sql, `switchyard_${names.size + 1}`);
  }
  return (await db.executeQuery(compiled)).rows;
}

type Query = (...args: unknown[]) => unknown;

/**
 * The pg client of Switchyard's pool: sends the texts `executePrepared` registered as named
 * statements. When PostgreSQL refuses one because a table it reads changed shape, the query
 * runs again under a fresh name (parsed anew); the refusal happens before anything runs.
 */
export class PreparingClient extends pg.Client {
  readonly #renamed = new Map<string, string>();
  #renames = 0;

  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // Looked up per call, so a wrapper of pg's own query (the bench's counter) still sees it.
    const query: Query = (...args) => (pg.Client.prototype.query as Query).apply(this, args);
    this.query = ((...args: unknown[]) => {
      const [text, values] = args;
      const name = typeof text === 'string' ? names.get(text) : undefined;
      if (name === undefined || !Array.isArray(values) || args.length !== 2) return query(...args);
      return this.#runPrepared(query, name, text as string, values);
    }) as pg.Client['query'];
  }

  async #runPrepared(query: Query, name: string, text: string, values: unknown[]) {
    const current = this.#renamed.get(text) ?? name;
    try {
      return await (query({ name: current, text, values }) as Promise<unknown>);
    } catch (error) {
      if (!isResultTypeChange(error)) throw error;
      this.#renames += 1;
      const fresh = `${name}_${this.#renames}`;
      this.#renamed.set(text, fresh);
      return query({ name: fresh, text, values });
    }
  }
}
