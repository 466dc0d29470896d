import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type Backend } from '../test/support/database.js';

/**
 * A place for Switchyard's state on one backend, kept for the whole run: the API part fills
 * it, the startup part then starts the real server on it warm.
 */
export interface BenchEnvironment {
  backend: Backend;
  /** Variables for loadConfig and for `switchyard serve` alike. */
  env: Record<string, string>;
  dispose(): Promise<void>;
}

function writeEd25519Key(dir: string): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const path = join(dir, 'jwt-signing-ed25519.pem');
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    mode: 0o600,
  });
  return path;
}

/** A Lockbox master key as an operator makes one: 32 random bytes, base64, mode 0600. */
function writeMasterKey(dir: string): string {
  const path = join(dir, 'master.key');
  writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return path;
}

/** PostgreSQL: a throwaway database (migrated) and key files. PGlite: an empty data folder. */
export async function createEnvironment(backend: Backend): Promise<BenchEnvironment> {
  const dataDir = mkdtempSync(join(tmpdir(), `switchyard-bench-${backend}-`));
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  if (backend === 'pglite') {
    return { backend, env: { SWITCHYARD_DATA_DIR: dataDir }, dispose: async () => removeDir() };
  }

  const database = await createTestDatabase('postgres');
  // The helper keeps its own small pool open until drop; the app under test opens its own.
  const url = database.url ?? '';
  const env = {
    SWITCHYARD_DATA_DIR: dataDir,
    DATABASE_URL: url,
    SWITCHYARD_JWT_PRIVATE_KEY_PATH: writeEd25519Key(dataDir),
    SWITCHYARD_MASTER_KEY_PATH: writeMasterKey(dataDir),
  };
  return {
    backend,
    env,
    async dispose() {
      await database.drop();
      removeDir();
    },
  };
}
