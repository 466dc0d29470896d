import type { Logger } from 'pino';
import type { Db } from '../platform/db/transaction.js';
import { rewrap, type MasterKeyRing } from './secret-crypto.js';
import * as repo from './secret.repository.js';
import { versionContext } from './value-store.js';
import { stagedContext } from './rotation-runner.js';

export interface RewrapResult {
  /** Values whose data key is now wrapped by the current master key. */
  rewrapped: number;
  /** Key ids still in use that are not loaded, so their values could not be re-wrapped. */
  missingKeyIds: string[];
}

const BATCH = 200;

/**
 * Re-wraps, under the current master key, every data key wrapped by another one: stored
 * versions and values staged for rotations. Values are not touched, so it is safe while
 * Switchyard runs: readers hold both keys until the old one is retired. Idempotent; a row
 * re-wrapped concurrently by another run is skipped.
 */
export async function rewrapSecrets(
  database: Db,
  keys: MasterKeyRing,
  logger: Logger,
): Promise<RewrapResult> {
  const db = repo.lockboxDb(database);
  const missing = new Set<string>();
  let rewrapped = 0;
  for (;;) {
    const rows = await repo.listVersionsToRewrap(db, keys.current.id, [...missing], BATCH);
    if (rows.length === 0) break;
    for (const row of rows) {
      if (row.key_id === null || row.wrapped_key === null || row.ciphertext === null) continue;
      if (!keys.byId.has(row.key_id)) {
        missing.add(row.key_id);
        continue;
      }
      const sealed = { keyId: row.key_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext };
      const next = rewrap(keys, sealed, versionContext(row.secret_id, row.version));
      if (
        await repo.replaceWrappedKey(
          db,
          { secret_id: row.secret_id, version: row.version, key_id: row.key_id },
          next,
        )
      )
        rewrapped++;
    }
  }
  for (const row of await repo.listStagedToRewrap(db, keys.current.id)) {
    if (
      row.staged_key_id === null ||
      row.staged_wrapped_key === null ||
      row.staged_ciphertext === null
    )
      continue;
    if (!keys.byId.has(row.staged_key_id)) {
      missing.add(row.staged_key_id);
      continue;
    }
    const sealed = {
      keyId: row.staged_key_id,
      wrappedKey: row.staged_wrapped_key,
      ciphertext: row.staged_ciphertext,
    };
    if (
      await repo.replaceStagedKey(
        db,
        row.id,
        row.staged_key_id,
        rewrap(keys, sealed, stagedContext(row.id)),
      )
    )
      rewrapped++;
  }
  logger.info(
    { masterKeyId: keys.current.id, rewrapped, missingKeyIds: [...missing] },
    'secret data keys re-wrapped',
  );
  return { rewrapped, missingKeyIds: [...missing] };
}
