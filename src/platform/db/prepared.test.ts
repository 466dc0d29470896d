import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { executePrepared } from './prepared.js';

interface ProbeSchema {
  prepared_probe: { id: number };
}

describe('prepared statements on postgres', () => {
  let t: TestDatabase;
  let db: Kysely<ProbeSchema>;

  before(async () => {
    t = await createTestDatabase('postgres');
    db = t.database.db as unknown as Kysely<ProbeSchema>;
    await t.database.withConnection(async (connection) => {
      await connection.query('create table prepared_probe (id int primary key)');
      await connection.query('insert into prepared_probe values (1)');
    });
  });
  after(async () => t.drop());

  const probe = () => db.selectFrom('prepared_probe').selectAll().where('id', '=', 1);

  it('sends a query it ran once as a statement each connection keeps', async () => {
    assert.deepEqual(await executePrepared(db, probe()), [{ id: 1 }]);
    const { sql } = probe().compile();
    const prepared = await t.database.withConnection(async (connection) => {
      await connection.query(sql, [1]);
      return connection.query('select statement from pg_prepared_statements');
    });
    assert.deepEqual(
      prepared.rows.map((row) => row['statement']),
      [sql],
    );
  });

  it('answers with the new shape after a column is added under a prepared statement', async () => {
    await executePrepared(db, probe());
    const { sql } = probe().compile();
    const rows = await t.database.withConnection(async (connection) => {
      await connection.query(sql, [1]);
      await connection.query(`alter table prepared_probe add column note text default 'new'`);
      return (await connection.query(sql, [1])).rows;
    });
    assert.deepEqual(rows, [{ id: 1, note: 'new' }]);
  });
});
