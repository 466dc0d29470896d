import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { knownSecrets } from '../platform/known-secrets.js';

/**
 * Envelope encryption for the built-in store. Every value is sealed with AES-256-GCM under
 * its own random data key; the data key is sealed the same way under a master key read
 * from a file. A sealed value names its master key by id, so after the master key changes
 * the old data keys can be re-wrapped (`switchyard secrets rewrap`) while both keys are
 * loaded, without touching a value and without downtime.
 *
 * Sealed layout (wrapped key and ciphertext alike): 12-byte IV ‖ ciphertext ‖ 16-byte tag.
 */
export interface Sealed {
  keyId: string;
  wrappedKey: Buffer;
  ciphertext: Buffer;
}

export interface MasterKey {
  id: string;
  key: Buffer;
}

export interface MasterKeyRing {
  /** Seals new values and re-wraps old data keys. */
  current: MasterKey;
  /** Every key that may open a value, by id (the current one included). */
  byId: ReadonlyMap<string, MasterKey>;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export class SecretCryptoError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'SecretCryptoError';
  }
}

/** A key's id: not secret, stable, and different for every key. */
export function masterKeyId(key: Buffer): string {
  return `mk-${createHash('sha256').update('switchyard-master-key\0').update(key).digest('hex').slice(0, 16)}`;
}

/** Accepts 32 raw bytes, or 32 bytes as base64 or hex text (surrounding whitespace ignored). */
export function parseMasterKey(content: Buffer, source: string): MasterKey {
  let key: Buffer | undefined;
  if (content.length === KEY_BYTES) key = content;
  else {
    const text = content.toString('utf8').trim();
    if (/^[0-9a-fA-F]{64}$/.test(text)) key = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) key = Buffer.from(text, 'base64');
  }
  if (key?.length !== KEY_BYTES) {
    throw new SecretCryptoError(`master key ${source} must hold 32 bytes (raw, base64 or hex)`);
  }
  return { id: masterKeyId(key), key };
}

export function readMasterKeyFile(path: string): MasterKey {
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (error) {
    throw new SecretCryptoError(`cannot read master key ${path}`, { cause: error });
  }
  return parseMasterKey(content, path);
}

/**
 * The embedded mode's master key: read from `dataDir/keys/master.key`, or generated there on
 * the first start (created exclusively, mode 0600, so two processes agree on one key).
 */
export function ensureEmbeddedMasterKey(dataDir: string): string {
  const path = join(dataDir, 'keys', 'master.key');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(path, `${randomBytes(KEY_BYTES).toString('base64')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return path;
}

/** True when anyone but the owner may read or write the file. */
export function isShared(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
}

export function loadMasterKeyRing(
  currentPath: string,
  previousPaths: readonly string[],
): MasterKeyRing {
  const current = readMasterKeyFile(currentPath);
  const byId = new Map([[current.id, current]]);
  for (const path of previousPaths) {
    const key = readMasterKeyFile(path);
    if (!byId.has(key.id)) byId.set(key.id, key);
  }
  return { current, byId };
}

function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new SecretCryptoError('sealed data is truncated');
  const iv = sealed.subarray(0, IV_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([
      decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
  } catch (error) {
    throw new SecretCryptoError('sealed data failed authentication', { cause: error });
  }
}

function keyFor(ring: MasterKeyRing, keyId: string): MasterKey {
  const key = ring.byId.get(keyId);
  if (key === undefined) throw new SecretCryptoError(`master key ${keyId} is not loaded`);
  return key;
}

/**
 * Seals `plaintext` under a fresh data key. `context` names what the value is (a secret
 * version, a staged rotation) and is bound into both tags, so a sealed value copied to
 * another row does not open there.
 */
export function sealValue(ring: MasterKeyRing, plaintext: Buffer, context: string): Sealed {
  rememberPlaintext(plaintext);
  const dataKey = randomBytes(KEY_BYTES);
  try {
    return {
      keyId: ring.current.id,
      wrappedKey: seal(ring.current.key, dataKey, `${ring.current.id}\0${context}`),
      ciphertext: seal(dataKey, plaintext, context),
    };
  } finally {
    dataKey.fill(0);
  }
}

export function openValue(ring: MasterKeyRing, sealed: Sealed, context: string): Buffer {
  const master = keyFor(ring, sealed.keyId);
  const dataKey = open(master.key, sealed.wrappedKey, `${master.id}\0${context}`);
  try {
    const plaintext = open(dataKey, sealed.ciphertext, context);
    rememberPlaintext(plaintext);
    return plaintext;
  } finally {
    dataKey.fill(0);
  }
}

/** The same value with its data key wrapped by the current master key instead. */
export function rewrap(ring: MasterKeyRing, sealed: Sealed, context: string): Sealed {
  const old = keyFor(ring, sealed.keyId);
  const dataKey = open(old.key, sealed.wrappedKey, `${old.id}\0${context}`);
  try {
    return {
      keyId: ring.current.id,
      wrappedKey: seal(ring.current.key, dataKey, `${ring.current.id}\0${context}`),
      ciphertext: sealed.ciphertext,
    };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * A keyed MAC of a value, for records that must recognise a value without holding it (the
 * idempotency record of a rotation request): useless for guessing without the master key.
 */
export function valueMac(ring: MasterKeyRing, value: Buffer): string {
  return createHmac('sha256', ring.current.key)
    .update('switchyard-value-mac\0')
    .update(value)
    .digest('base64url');
}

/**
 * Tells the process's known-secrets registry about a plaintext being sealed or opened, so
 * logs and streams scrub it. A sealed JSON object (a set of credentials) gives each of its
 * string fields as well, since each can be printed alone.
 */
function rememberPlaintext(plaintext: Buffer): void {
  knownSecrets.add(plaintext);
  if (plaintext[0] !== 0x7b) return;
  try {
    const parsed: unknown = JSON.parse(plaintext.toString('utf8'));
    if (parsed === null || typeof parsed !== 'object') return;
    for (const field of Object.values(parsed))
      if (typeof field === 'string') knownSecrets.add(field);
  } catch {
    // Not JSON: the whole value is known already.
  }
}
