import { knownSecrets } from '../platform/known-secrets.js';
import { AppError } from '../platform/errors.js';
import { openValue, sealValue, SecretCryptoError, type MasterKeyRing } from './secret-crypto.js';
import type { StoredValue } from './secret.repository.js';
import type { SecretBackendName, SecretVersionRow } from './secret.tables.js';
import type { VaultKvClient } from './vault-kv.js';

/**
 * Where the bytes of secret versions live. Metadata (names, scopes, version numbers, who
 * wrote what) is always in the database; a store only keeps and returns values. The
 * built-in store seals them into the version row itself; the Vault store keeps them in a
 * KV v2 engine and returns the Vault version that holds each.
 */
export interface SecretValueStore {
  readonly backend: SecretBackendName;
  /** Stores `value` as `version` of the secret; the result goes onto the version row. */
  put(secretId: string, version: number, value: Buffer): Promise<StoredValue>;
  /** The value of a version row that is not destroyed. */
  get(secretId: string, row: SecretVersionRow): Promise<Buffer>;
  /** Makes the given versions unrecoverable in the store. */
  destroy(secretId: string, rows: SecretVersionRow[]): Promise<void>;
  /** Forgets every version of a deleted secret. */
  remove(secretId: string): Promise<void>;
}

/** The context bound into a stored version's seal (see sealValue). */
export function versionContext(secretId: string, version: number): string {
  return `secret:${secretId}:${version}`;
}

export function createBuiltinStore(keys: MasterKeyRing): SecretValueStore {
  return {
    backend: 'builtin',
    async put(secretId, version, value) {
      const sealed = sealValue(keys, value, versionContext(secretId, version));
      return {
        key_id: sealed.keyId,
        wrapped_key: sealed.wrappedKey,
        ciphertext: sealed.ciphertext,
        backend_version: null,
      };
    },
    async get(secretId, row) {
      if (row.key_id === null || row.wrapped_key === null || row.ciphertext === null) {
        throw new AppError('SECRET_VERSION_NOT_FOUND', `Version ${row.version} holds no value`);
      }
      try {
        return openValue(
          keys,
          { keyId: row.key_id, wrappedKey: row.wrapped_key, ciphertext: row.ciphertext },
          versionContext(secretId, row.version),
        );
      } catch (error) {
        if (!(error instanceof SecretCryptoError)) throw error;
        throw new AppError('INTERNAL', 'A stored secret could not be decrypted', { cause: error });
      }
    },
    // The repository clears the sealed columns of destroyed versions; nothing else holds them.
    async destroy() {},
    async remove() {},
  };
}

/**
 * Values in Vault KV v2 at `{prefix}/{secret id}`, one Vault version per Switchyard version,
 * base64 so any bytes survive JSON. Writes use check-and-set against the version Vault
 * reported just before, so a concurrent writer outside Switchyard is detected, not
 * overwritten.
 */
export function createVaultStore(client: VaultKvClient, prefix: string): SecretValueStore {
  const pathOf = (secretId: string) => `${prefix.replace(/^\/+|\/+$/g, '')}/${secretId}`;
  return {
    backend: 'vault',
    async put(secretId, _version, value) {
      knownSecrets.add(value);
      const path = pathOf(secretId);
      const metadata = await client.readMetadata(path);
      const written = await client.write(
        path,
        { value: value.toString('base64') },
        { cas: metadata?.currentVersion ?? 0 },
      );
      return {
        key_id: null,
        wrapped_key: null,
        ciphertext: null,
        backend_version: written.version,
      };
    },
    async get(secretId, row) {
      const found =
        row.backend_version === null
          ? undefined
          : await client.read(pathOf(secretId), row.backend_version);
      const encoded = found?.data['value'];
      if (typeof encoded !== 'string') {
        throw new AppError(
          'SECRET_VERSION_NOT_FOUND',
          `Version ${row.version} holds no value in Vault`,
        );
      }
      const value = Buffer.from(encoded, 'base64');
      knownSecrets.add(value);
      return value;
    },
    async destroy(secretId, rows) {
      const versions = rows.flatMap((row) =>
        row.backend_version === null ? [] : [row.backend_version],
      );
      await client.destroy(pathOf(secretId), versions);
    },
    async remove(secretId) {
      await client.deleteMetadata(pathOf(secretId));
    },
  };
}
