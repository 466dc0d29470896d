import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import type { Schema } from '../../src/platform/db/schema.js';
import { createTestDatabase, testBackends, type TestDatabase } from '../support/database.js';

interface ForeignKey {
  table: string;
  name: string;
  columns: string[];
}
interface IndexRow {
  table: string;
  columns: string[];
}

const CHECK_VIOLATION = '23514';
const DIGEST = `sha256:${'a'.repeat(64)}`;
const SHA = 'b'.repeat(40);

/** Foreign keys of the public schema with their columns in key order. */
async function foreignKeys(db: Kysely<Schema>): Promise<ForeignKey[]> {
  const { rows } = await sql<{ table: string; name: string; columns: string[] }>`
    SELECT c.conrelid::regclass::text AS "table", c.conname AS name,
           array_agg(a.attname::text ORDER BY k.ord) AS columns
    FROM pg_constraint c
    JOIN pg_namespace n ON n.oid = c.connamespace
    CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
    WHERE c.contype = 'f' AND n.nspname = 'public'
    GROUP BY c.conrelid, c.conname`.execute(db);
  return rows;
}

/** Plain (non-partial) indexes of the public schema with their key columns in order. */
async function indexes(db: Kysely<Schema>): Promise<IndexRow[]> {
  const { rows } = await sql<{ table: string; columns: string[] }>`
    SELECT i.indrelid::regclass::text AS "table",
           array_agg(coalesce(a.attname::text, '(expression)') ORDER BY k.ord) AS columns
    FROM pg_index i
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE n.nspname = 'public' AND i.indpred IS NULL AND k.ord <= i.indnkeyatts
    GROUP BY i.indexrelid, i.indrelid`.execute(db);
  return rows;
}

/** Columns of public tables with the given name, and whether a CHECK constraint covers each. */
async function checkedColumns(
  db: Kysely<Schema>,
  column: string,
): Promise<Array<{ table: string; isChecked: boolean }>> {
  const { rows } = await sql<{ table: string; isChecked: boolean }>`
    SELECT cl.relname::text AS "table",
           EXISTS (
             SELECT 1 FROM pg_constraint c
             WHERE c.conrelid = cl.oid AND c.contype = 'c' AND a.attnum = ANY (c.conkey)
           ) AS "isChecked"
    FROM pg_attribute a
    JOIN pg_class cl ON cl.oid = a.attrelid AND cl.relkind = 'r'
    JOIN pg_namespace n ON n.oid = cl.relnamespace
    WHERE n.nspname = 'public' AND a.attname = ${column} AND NOT a.attisdropped`.execute(db);
  return rows;
}

async function assertRejected(work: Promise<unknown>, label: string): Promise<void> {
  await assert.rejects(work, (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, CHECK_VIOLATION, `${label}: ${String(error)}`);
    return true;
  });
}

for (const backend of testBackends()) {
  describe(`the database schema on ${backend}`, () => {
    let database: TestDatabase;
    let db: Kysely<Schema>;
    const ids = { user: '', project: '', environment: '', service: '', build: '', release: '' };

    before(async () => {
      database = await createTestDatabase(backend);
      db = database.database.db;
      ids.user = (
        await db
          .insertInto('users')
          .values({ email: 'catalog@example.com', name: 'C', password_hash: 'x' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
      ids.project = (
        await db
          .insertInto('projects')
          .values({ slug: 'catalog', name: 'Catalog' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
      ids.environment = (
        await db
          .insertInto('environments')
          .values({ project_id: ids.project, name: 'staging' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
      ids.service = (
        await db
          .insertInto('services')
          .values({
            project_id: ids.project,
            name: 'web',
            git_url: 'https://github.com/a/b.git',
            branch: 'main',
            build: '{}',
            runtime: '{}',
          })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
      ids.build = (
        await db
          .insertInto('builds')
          .values({ service_id: ids.service, ref: 'main' })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
      ids.release =
        (
          await sql<{ id: string }>`
        INSERT INTO releases (service_id, build_id, version, commit_sha, digest, artifact_path, kind, start_command)
        VALUES (${ids.service}, ${ids.build}, 1, ${SHA}, ${DIGEST}, '/a', 'node', '{"command":"node","args":[]}')
        RETURNING id`.execute(db)
        ).rows[0]?.id ?? '';
    });
    after(async () => database.drop());

    it('leads some index with the columns of every foreign key', async () => {
      const keys = await foreignKeys(db);
      const all = await indexes(db);
      assert.ok(keys.length >= 15, `found only ${keys.length} foreign keys`);
      const unindexed = keys.filter(
        (key) =>
          !all.some(
            (index) =>
              index.table === key.table &&
              index.columns.length >= key.columns.length &&
              index.columns.slice(0, key.columns.length).sort().join() ===
                [...key.columns].sort().join(),
          ),
      );
      assert.deepEqual(
        unindexed.map((key) => `${key.table}(${key.columns.join(', ')}) [${key.name}]`),
        [],
      );
    });

    it('guards every status column and every replica count with a CHECK constraint', async () => {
      const statuses = await checkedColumns(db, 'status');
      assert.ok(statuses.length >= 4, `status columns: ${statuses.map((s) => s.table).join()}`);
      assert.deepEqual(
        statuses.filter((column) => !column.isChecked).map((column) => `${column.table}.status`),
        [],
      );
      const replicas = await checkedColumns(db, 'replicas');
      assert.ok(replicas.length >= 1);
      assert.deepEqual(
        replicas.filter((column) => !column.isChecked).map((column) => `${column.table}.replicas`),
        [],
      );
    });

    it('refuses a bad status, replica count or digest written straight with SQL', async () => {
      const deployment = (replicas: number, status: string) =>
        sql`
        INSERT INTO deployments (service_id, environment_id, release_id, replicas, status)
        VALUES (${ids.service}, ${ids.environment}, ${ids.release}, ${replicas}, ${status})`.execute(
          db,
        );
      const release = (version: number, digest: string, commitSha = SHA) =>
        sql`
        INSERT INTO releases (service_id, build_id, version, commit_sha, digest, artifact_path, kind, start_command)
        VALUES (${ids.service}, ${ids.build}, ${version}, ${commitSha}, ${digest}, '/a', 'node', '{"command":"node","args":[]}')`.execute(
          db,
        );

      await deployment(1, 'live');
      await assertRejected(deployment(1, 'exploded'), 'deployment status');
      await assertRejected(deployment(1, 'LIVE'), 'deployment status case');
      await assertRejected(deployment(-1, 'pending'), 'negative replicas');
      await assertRejected(deployment(101, 'pending'), 'too many replicas');
      await assertRejected(
        sql`UPDATE deployments SET status = 'done' WHERE service_id = ${ids.service}`.execute(db),
        'status update',
      );
      await assertRejected(
        sql`UPDATE builds SET status = 'bogus' WHERE id = ${ids.build}`.execute(db),
        'build status',
      );
      await assertRejected(
        sql`UPDATE projects SET status = 'deleted' WHERE id = ${ids.project}`.execute(db),
        'project status',
      );
      await assertRejected(
        sql`UPDATE users SET status = 'banned' WHERE id = ${ids.user}`.execute(db),
        'user status',
      );

      await release(2, `sha256:${'c'.repeat(64)}`);
      for (const digest of [
        '',
        'sha256:',
        `sha256:${'A'.repeat(64)}`,
        `sha256:${'c'.repeat(63)}`,
        `md5:${'c'.repeat(32)}`,
        'latest',
      ]) {
        await assertRejected(release(3, digest), `digest ${JSON.stringify(digest)}`);
      }
      await assertRejected(release(3, DIGEST, 'not-a-sha'), 'commit sha');
      await assertRejected(release(0, DIGEST), 'version 0');
    });
  });
}
