import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { seedProject, startLockboxApp } from './test-support/lockbox-app.js';
import { parseMasterKey } from './secret-crypto.js';
import { readFileSync } from 'node:fs';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '..', 'cli', 'main.ts');

function keyIdsIn(database: TestDatabase) {
  return database.database.db
    .withTables<{ secret_versions: { key_id: string | null } }>()
    .selectFrom('secret_versions')
    .select('key_id')
    .distinct()
    .execute()
    .then((rows) => rows.map((row) => row.key_id));
}

// The command runs against PostgreSQL: an embedded PGlite folder is one process's at a time.
describe('switchyard secrets rewrap', { skip: !testBackends().includes('postgres') }, () => {
  let dir: string;
  let database: TestDatabase;
  const keyFile = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-rewrap-'));
    database = await createTestDatabase('postgres');
    const pem = generateKeyPairSync('ed25519')
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    writeFileSync(join(dir, 'jwt.pem'), pem);
  });
  after(async () => {
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves every value to the new master key without downtime, then the old key can go', async () => {
    const oldKey = keyFile('old.key');
    const newKey = keyFile('new.key');
    const before = await startLockboxApp('postgres', {
      database,
      dataDir: dir,
      env: { SWITCHYARD_MASTER_KEY_PATH: oldKey },
    });
    const { owner, slug } = await seedProject(before.app);
    for (const [name, value] of [
      ['A', 'alpha'],
      ['B', 'beta'],
      ['A', 'alpha-2'],
    ] as const) {
      await before.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/${name}`,
        headers: owner.headers,
        payload: { value },
      });
    }
    await before.close();

    // Both keys loaded: old values still open while rewrap runs.
    const during = await startLockboxApp('postgres', {
      database,
      dataDir: dir,
      env: { SWITCHYARD_MASTER_KEY_PATH: newKey, SWITCHYARD_MASTER_KEY_PREVIOUS_PATHS: oldKey },
    });
    const read = await during.app.inject({
      url: `/v1/projects/${slug}/secrets/A/value?version=1`,
      headers: owner.headers,
    });
    assert.equal(read.json().value, 'alpha');

    const env = {
      PATH: process.env['PATH'] ?? '',
      DATABASE_URL: database.url ?? '',
      SWITCHYARD_JWT_PRIVATE_KEY_PATH: join(dir, 'jwt.pem'),
      SWITCHYARD_MASTER_KEY_PATH: newKey,
      SWITCHYARD_MASTER_KEY_PREVIOUS_PATHS: oldKey,
      LOG_LEVEL: 'silent',
    };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', MAIN, 'secrets', 'rewrap'], {
      env,
    });
    assert.match(stdout, /re-wrapped 3 value\(s\) under master key mk-/);
    assert.deepEqual(await keyIdsIn(database), [parseMasterKey(readFileSync(newKey), 'new').id]);
    const again = await run(process.execPath, ['--import', 'tsx', MAIN, 'secrets', 'rewrap'], {
      env,
    });
    assert.match(again.stdout, /re-wrapped 0 value\(s\)/);
    await during.close();

    // Only the new key: everything still opens.
    const after = await startLockboxApp('postgres', {
      database,
      dataDir: dir,
      env: { SWITCHYARD_MASTER_KEY_PATH: newKey },
    });
    for (const [name, version, value] of [
      ['A', 1, 'alpha'],
      ['A', 2, 'alpha-2'],
      ['B', 1, 'beta'],
    ] as const) {
      const response = await after.app.inject({
        url: `/v1/projects/${slug}/secrets/${name}/value?version=${version}`,
        headers: owner.headers,
      });
      assert.equal(response.json().value, value);
    }
    await after.close();
  });

  it('refuses to start in external mode without a master key file: a configuration error, exit 10', async () => {
    const env = {
      PATH: process.env['PATH'] ?? '',
      DATABASE_URL: database.url ?? '',
      SWITCHYARD_JWT_PRIVATE_KEY_PATH: join(dir, 'jwt.pem'),
      SWITCHYARD_PORT: '0',
      SWITCHYARD_ROUTER_PORT: '0',
      LOG_LEVEL: 'error',
    };
    for (const command of [['serve'], ['secrets', 'rewrap']]) {
      const failed = await run(process.execPath, ['--import', 'tsx', MAIN, ...command], {
        env,
        timeout: 30_000,
      }).then(
        () => undefined,
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      assert.ok(failed !== undefined, `${command.join(' ')} must fail`);
      assert.equal(failed.code, 10, `${command.join(' ')} exit code`);
      assert.match(
        failed.stderr,
        /^switchyard: invalid configuration:\n {2}- SWITCHYARD_MASTER_KEY_PATH: required when DATABASE_URL is set/,
      );
    }
  });
});
