import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Database } from './database.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
// A fixed key for pg_advisory_lock so replicas starting together apply migrations once.
const MIGRATION_LOCK_KEY = 724_311_001;

/** The migrations folder sits at the package root, beside src/ and dist/. */
export function migrationsDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'migrations');
}

export function loadMigrations(dir = migrationsDir()): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const match = MIGRATION_FILE.exec(file);
    if (match === null) continue;
    const [, version, name] = match;
    if (version === undefined || name === undefined) continue;
    migrations.push({ version: Number(version), name, sql: readFileSync(join(dir, file), 'utf8') });
  }
  return migrations;
}

/** A fingerprint of every migration's text, used to cache prepared test databases. */
export function migrationsFingerprint(migrations = loadMigrations()): string {
  const hash = createHash('sha256');
  for (const migration of migrations) hash.update(`${migration.version}\0${migration.sql}\0`);
  return hash.digest('hex').slice(0, 16);
}

/**
 * Applies pending migrations in order, each in its own transaction, under a session-level
 * advisory lock. Returns the versions it applied.
 */
export async function migrate(database: Database, logger: Logger): Promise<number[]> {
  const migrations = loadMigrations();
  return database.withConnection(async (connection) => {
    await connection.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await connection.script(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await connection.query('SELECT version FROM schema_migrations');
      const applied = new Set(rows.map((row) => Number(row['version'])));
      const done: number[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        const started = Date.now();
        await applyOne(connection, migration);
        logger.info(
          {
            version: migration.version,
            migration: migration.name,
            durationMs: Date.now() - started,
          },
          'migration applied',
        );
        done.push(migration.version);
      }
      return done;
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  });
}

async function applyOne(
  connection: Parameters<Parameters<Database['withConnection']>[0]>[0],
  migration: Migration,
): Promise<void> {
  await connection.script('BEGIN');
  try {
    await connection.script(migration.sql);
    await connection.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
      migration.version,
      migration.name,
    ]);
    await connection.script('COMMIT');
  } catch (error) {
    await connection.script('ROLLBACK').catch(() => undefined);
    throw new Error(`migration ${migration.version}_${migration.name} failed`, { cause: error });
  }
}
