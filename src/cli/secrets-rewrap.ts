import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { openDatabase } from '../platform/db/database.js';
import { openLockboxStore } from '../secrets/lockbox.js';
import { rewrapSecrets } from '../secrets/secret-rewrap.js';

/**
 * `switchyard secrets rewrap`: after SWITCHYARD_MASTER_KEY_PATH names a new key (and
 * SWITCHYARD_MASTER_KEY_PREVIOUS_PATHS the old ones), wraps every stored data key under the
 * new key. Safe while Switchyard runs. Exits 1 when values remain under a key not loaded.
 */
export async function rewrapCommand(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  const database = await openDatabase(config, logger);
  try {
    const { keys } = openLockboxStore(config, logger, database.db);
    const result = await rewrapSecrets(database.db, keys, logger);
    process.stdout.write(
      `re-wrapped ${result.rewrapped} value(s) under master key ${keys.current.id}\n`,
    );
    if (result.missingKeyIds.length > 0) {
      process.stderr.write(
        `switchyard: values remain under master keys that are not loaded: ${result.missingKeyIds.join(', ')} (add them to SWITCHYARD_MASTER_KEY_PREVIOUS_PATHS)\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    await database.close();
  }
}
