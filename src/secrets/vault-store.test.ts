import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { startFakeVault, type FakeVault } from './test-support/fake-vault.js';
import { seedProject, startLockboxApp, type LockboxApp } from './test-support/lockbox-app.js';
import { VaultKvClient } from './vault-kv.js';

describe('Vault KV v2 client against a loopback Vault', () => {
  let vault: FakeVault;
  let client: VaultKvClient;
  before(async () => {
    vault = await startFakeVault({ token: 'root-token' });
    client = new VaultKvClient({
      address: vault.address,
      mount: 'secret',
      token: async () => vault.token,
      timeoutMs: 2_000,
    });
  });
  after(async () => vault.close());

  it('writes versions, reads any of them, and reports metadata', async () => {
    assert.equal((await client.write('app/db', { value: 'one' }, { cas: 0 })).version, 1);
    assert.equal((await client.write('app/db', { value: 'two' }, { cas: 1 })).version, 2);
    assert.equal((await client.read('app/db', 1))?.data['value'], 'one');
    assert.equal((await client.read('app/db'))?.data['value'], 'two');
    const metadata = await client.readMetadata('app/db');
    assert.equal(metadata?.currentVersion, 2);
    assert.deepEqual(Object.keys(metadata?.versions ?? {}), ['1', '2']);
    assert.equal(await client.readMetadata('app/none'), undefined);
  });

  it('refuses a write whose check-and-set version is stale', async () => {
    await client.write('app/cas', { value: 'a' }, { cas: 0 });
    await assert.rejects(client.write('app/cas', { value: 'b' }, { cas: 0 }), {
      code: 'SECRET_CONFLICT',
    });
  });

  it('destroys versions for good and deletes whole paths', async () => {
    await client.write('app/gone', { value: 'x' });
    await client.write('app/gone', { value: 'y' });
    await client.destroy('app/gone', [1]);
    assert.equal(await client.read('app/gone', 1), undefined);
    assert.equal((await client.read('app/gone', 2))?.data['value'], 'y');
    await client.deleteMetadata('app/gone');
    assert.equal(await client.readMetadata('app/gone'), undefined);
  });

  it('answers SECRET_STORE_UNAVAILABLE for a refused token or an unreachable Vault', async () => {
    const wrong = new VaultKvClient({
      address: vault.address,
      mount: 'secret',
      token: async () => 'stale',
      timeoutMs: 2_000,
    });
    await assert.rejects(wrong.read('app/db'), {
      code: 'SECRET_STORE_UNAVAILABLE',
      message: "Vault refused Switchyard's token",
    });
    const nowhere = new VaultKvClient({
      address: 'http://127.0.0.1:9',
      mount: 'secret',
      token: async () => 't',
      timeoutMs: 2_000,
    });
    await assert.rejects(nowhere.read('app/db'), { code: 'SECRET_STORE_UNAVAILABLE' });
  });
});

for (const backend of testBackends()) {
  describe(`secrets stored in Vault on ${backend}`, () => {
    let vault: FakeVault;
    let t: LockboxApp;
    let dir: string;
    let tokenFile: string;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'switchyard-vault-'));
      tokenFile = join(dir, 'vault-token');
      writeFileSync(tokenFile, 'token-one\n', { mode: 0o600 });
      vault = await startFakeVault({ token: 'token-one' });
      t = await startLockboxApp(backend, {
        env: {
          SWITCHYARD_SECRETS_BACKEND: 'vault',
          SWITCHYARD_VAULT_ADDR: vault.address,
          SWITCHYARD_VAULT_TOKEN_PATH: tokenFile,
        },
      });
    });
    after(async () => {
      await t.close();
      await vault.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('keeps values in Vault, one Vault version per version, byte-exact', async () => {
      const { owner, serviceId } = await seedProject(t.app);
      const url = `/v1/services/${serviceId}/secrets/SIGNING_KEY`;
      const binary = randomBytes(48);
      await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { value: 'multi\nline\n' },
      });
      const second = await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { valueBase64: binary.toString('base64') },
      });
      assert.equal(second.statusCode, 200, second.body);

      const secretId = second.json().id as string;
      const stored = vault.paths.get(`switchyard/${secretId}`);
      assert.equal(stored?.length, 2);
      assert.equal(stored?.[0]?.data?.['value'], Buffer.from('multi\nline\n').toString('base64'));
      const rows = await t.deps.database.db
        .withTables<{
          secret_versions: {
            secret_id: string;
            ciphertext: Buffer | null;
            backend_version: number | null;
          };
        }>()
        .selectFrom('secret_versions')
        .select(['ciphertext', 'backend_version'])
        .where('secret_id', '=', secretId)
        .execute();
      assert.deepEqual(rows.map((row) => [row.ciphertext, row.backend_version]).sort(), [
        [null, 1],
        [null, 2],
      ]);

      const first = await t.app.inject({ url: `${url}/value?version=1`, headers: owner.headers });
      assert.equal(first.json().value, 'multi\nline\n');
      const latest = await t.app.inject({ url: `${url}/value`, headers: owner.headers });
      assert.deepEqual(Buffer.from(latest.json().valueBase64, 'base64'), binary);

      const destroyed = await t.app.inject({
        method: 'POST',
        url: `${url}/destroy`,
        headers: owner.headers,
        payload: { versions: [1] },
      });
      assert.deepEqual(destroyed.json().destroyed, [1]);
      assert.equal(stored?.[0]?.destroyed, true);
    });

    it('answers SECRET_CONFLICT when another writer changes the path mid-write', async () => {
      const { owner, serviceId } = await seedProject(t.app);
      const url = `/v1/services/${serviceId}/secrets/RACED`;
      const created = await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { value: 'v1' },
      });
      const path = `switchyard/${created.json().id as string}`;
      vault.beforeWrite = (written) => {
        vault.beforeWrite = undefined;
        vault.paths.get(written)?.push({
          data: { value: 'b3V0c2lkZQ==' },
          created_time: '',
          deletion_time: '',
          destroyed: false,
        });
      };
      const raced = await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { value: 'v2-secret-value' },
      });
      assert.equal(raced.statusCode, 409);
      assert.equal(raced.json().error.code, 'SECRET_CONFLICT');
      assert.ok(!raced.body.includes('v2-secret-value'));
      assert.equal((await t.app.inject({ url, headers: owner.headers })).json().currentVersion, 1);
      assert.equal(vault.paths.get(path)?.length, 2);
    });

    it('uses a rotated Vault token file at once, without a restart', async () => {
      const { owner, serviceId } = await seedProject(t.app);
      const url = `/v1/services/${serviceId}/secrets/ROTATED_TOKEN`;
      await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { value: 'before' },
      });

      vault.token = 'token-two';
      const refused = await t.app.inject({ url: `${url}/value`, headers: owner.headers });
      assert.equal(refused.statusCode, 503);
      assert.equal(refused.json().error.code, 'SECRET_STORE_UNAVAILABLE');

      writeFileSync(tokenFile, 'token-two\n');
      const read = await t.app.inject({ url: `${url}/value`, headers: owner.headers });
      assert.equal(read.json().value, 'before');
      assert.equal(vault.requests.at(-1)?.token, 'token-two');
      assert.ok(
        !t.logs.some((line) => line.includes('token-one') || line.includes('token-two')),
        'tokens are in no log line',
      );
    });
  });
}
