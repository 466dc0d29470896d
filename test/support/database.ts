import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { pino } from 'pino';
import { wrapPglite, type Database } from '../../src/platform/db/database.js';
import { migrate, migrationsFingerprint } from '../../src/platform/db/migrate.js';
import { loadConfig } from '../../src/platform/config.js';
import { openDatabase } from '../../src/platform/db/database.js';

export type Backend = 'pglite' | 'postgres';

const silent = pino({ level: 'silent' });

/** The backends every database test runs on; SWITCHYARD_TEST_BACKENDS narrows them. */
export function testBackends(): Backend[] {
  const raw = process.env['SWITCHYARD_TEST_BACKENDS'];
  if (raw === undefined || raw === '') return ['pglite', 'postgres'];
  return raw
    .split(',')
    .map((name) => name.trim())
    .filter((name): name is Backend => name === 'pglite' || name === 'postgres');
}

export function adminDatabaseUrl(): string {
  return (
    process.env['SWITCHYARD_TEST_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

export interface TestDatabase {
  database: Database;
  /** Set for PostgreSQL: the URL of the throwaway database. */
  url: string | undefined;
  drop(): Promise<void>;
}

/**
 * A migrated PGlite, loaded from a template data folder cached per migration fingerprint
 * (making a fresh one takes seconds; loading the template well under one).
 */
async function pgliteTemplate(): Promise<Blob> {
  const dir = join(tmpdir(), 'switchyard-test-templates');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `pglite-${migrationsFingerprint()}.tar`);
  if (!existsSync(path)) {
    const fresh = await PGlite.create();
    await migrate(wrapPglite(fresh, silent), silent);
    const dump = await fresh.dumpDataDir('none');
    await fresh.close();
    const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(temp, Buffer.from(await dump.arrayBuffer()));
    renameSync(temp, path);
  }
  return new Blob([readFileSync(path)]);
}

export async function createTestDatabase(backend: Backend): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const pglite = await PGlite.create({ loadDataDir: await pgliteTemplate() });
    const database = wrapPglite(pglite, silent);
    return { database, url: undefined, drop: () => database.close() };
  }
  const name = `switchyard_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;
  const config = loadConfig({
    DATABASE_URL: url.toString(),
    SWITCHYARD_JWT_PRIVATE_KEY_PATH: '/dev/null',
    DATABASE_POOL_MAX: '5',
  });
  const database = await openDatabase(config, silent);
  await migrate(database, silent);
  return {
    database,
    url: url.toString(),
    async drop() {
      await database.close();
      const cleanup = new pg.Client({ connectionString: adminDatabaseUrl() });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}
