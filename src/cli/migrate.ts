import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { openDatabase } from '../platform/db/database.js';
import { migrate } from '../platform/db/migrate.js';

/** `switchyard migrate`: apply pending migrations and exit. */
export async function migrateCommand(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  const database = await openDatabase(config, logger);
  try {
    const applied = await migrate(database, logger);
    process.stdout.write(
      applied.length === 0
        ? 'database is up to date\n'
        : `applied migrations ${applied.join(', ')}\n`,
    );
  } finally {
    await database.close();
  }
}
