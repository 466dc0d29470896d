import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ensureEmbeddedMasterKey,
  loadMasterKeyRing,
  openValue,
  parseMasterKey,
  rewrap,
  sealValue,
  SecretCryptoError,
} from './secret-crypto.js';

describe('secret envelope encryption', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-crypto-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const keyFile = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, randomBytes(32).toString('base64'), { mode: 0o600 });
    return path;
  };

  it('round-trips any bytes and never stores them in the clear', () => {
    const ring = loadMasterKeyRing(keyFile('a.key'), []);
    const value = Buffer.concat([Buffer.from('line one\nline two\r\n\0'), randomBytes(300)]);
    const sealed = sealValue(ring, value, 'secret:s1:1');
    assert.equal(sealed.keyId, ring.current.id);
    assert.equal(sealed.ciphertext.indexOf(value.subarray(0, 8)), -1);
    assert.deepEqual(openValue(ring, sealed, 'secret:s1:1'), value);
  });

  it('uses a fresh data key and IV for every value', () => {
    const ring = loadMasterKeyRing(keyFile('b.key'), []);
    const first = sealValue(ring, Buffer.from('same'), 'ctx');
    const second = sealValue(ring, Buffer.from('same'), 'ctx');
    assert.notDeepEqual(first.ciphertext, second.ciphertext);
    assert.notDeepEqual(first.wrappedKey, second.wrappedKey);
  });

  it('refuses a value moved to another context or tampered with', () => {
    const ring = loadMasterKeyRing(keyFile('c.key'), []);
    const sealed = sealValue(ring, Buffer.from('hunter2'), 'secret:s1:1');
    assert.throws(() => openValue(ring, sealed, 'secret:s1:2'), SecretCryptoError);
    const flipped = Buffer.from(sealed.ciphertext);
    flipped[14] = (flipped[14] ?? 0) ^ 1;
    assert.throws(
      () => openValue(ring, { ...sealed, ciphertext: flipped }, 'secret:s1:1'),
      SecretCryptoError,
    );
  });

  it('re-wraps data keys under a new master key while the old one is still loaded', () => {
    const oldPath = keyFile('old.key');
    const newPath = keyFile('new.key');
    const before = loadMasterKeyRing(oldPath, []);
    const sealed = sealValue(before, Buffer.from('rotate me'), 'ctx');

    const both = loadMasterKeyRing(newPath, [oldPath]);
    assert.deepEqual(openValue(both, sealed, 'ctx'), Buffer.from('rotate me'));
    const moved = rewrap(both, sealed, 'ctx');
    assert.equal(moved.keyId, both.current.id);
    assert.deepEqual(moved.ciphertext, sealed.ciphertext);

    const newOnly = loadMasterKeyRing(newPath, []);
    assert.deepEqual(openValue(newOnly, moved, 'ctx'), Buffer.from('rotate me'));
    assert.throws(() => openValue(newOnly, sealed, 'ctx'), /not loaded/);
  });

  it('accepts raw, base64 and hex keys and rejects anything else', () => {
    const raw = randomBytes(32);
    const id = parseMasterKey(raw, 'raw').id;
    assert.equal(parseMasterKey(Buffer.from(`${raw.toString('base64')}\n`), 'b64').id, id);
    assert.equal(parseMasterKey(Buffer.from(raw.toString('hex')), 'hex').id, id);
    assert.throws(() => parseMasterKey(Buffer.from('too short'), 'bad'), /32 bytes/);
  });

  it('generates the embedded key once, owner-only', () => {
    const dataDir = join(dir, 'data');
    const path = ensureEmbeddedMasterKey(dataDir);
    const first = readFileSync(path, 'utf8');
    assert.equal(ensureEmbeddedMasterKey(dataDir), path);
    assert.equal(readFileSync(path, 'utf8'), first);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});
