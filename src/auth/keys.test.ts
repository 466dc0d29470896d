import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import { ConfigError } from '../platform/config.js';
import { loadKeyRing } from './keys.js';
import { signAccessToken, verifyAccessToken } from './tokens.js';

const settings = {
  issuer: 'switchyard',
  audience: 'switchyard-api',
  accessTokenTtlSeconds: 900,
  clockSkewSeconds: 30,
};
const subject = () => ({ userId: randomUUID(), sessionId: randomUUID(), isInstanceAdmin: false });

const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
const publicPem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

describe('signing key ring', () => {
  let dir: string;
  const write = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-keys-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('generates one embedded Ed25519 key in the data folder and reuses it', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'));
    const first = await loadKeyRing({ keyFile: undefined, dataDir });
    const second = await loadKeyRing({ keyFile: undefined, dataDir });
    assert.equal(first.signing.alg, 'EdDSA');
    assert.equal(first.signing.kid, second.signing.kid);
  });

  it('signs with the newest key of a folder, verifies with all, and serves every public key', async () => {
    const keysDir = mkdtempSync(join(dir, 'rotation-'));
    const old = generateKeyPairSync('ed25519').privateKey;
    writeFileSync(join(keysDir, '2026-01-01.pem'), pem(old));
    const before = await loadKeyRing({ keyFile: undefined, keysDir, dataDir: dir });
    const issuedBefore = await signAccessToken(before, settings, subject());

    // Rotation: a newer key is added; tokens of the old one stay valid, new ones use the new key.
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    writeFileSync(join(keysDir, '2026-02-01.pem'), pem(rsa));
    const after = await loadKeyRing({ keyFile: undefined, keysDir, dataDir: dir });
    assert.equal(after.signing.alg, 'RS256');
    assert.equal(after.verifying.size, 2);
    await verifyAccessToken(after, settings, issuedBefore.token);
    const issuedAfter = await signAccessToken(after, settings, subject());
    await verifyAccessToken(after, settings, issuedAfter.token);
    const kids = after
      .jwks()
      .keys.map((key) => key.kid)
      .sort();
    assert.deepEqual(kids, [...after.verifying.keys()].sort());
    assert.ok(
      after.jwks().keys.every((key) => key.d === undefined && key.use === 'sig'),
      'no private parts in JWKS',
    );
  });

  it('reads JWK files and JWK sets, keeps their kid, and lets a public-only key verify but never sign', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateJwk = { ...(await exportJWK(privateKey)), kid: 'ec-2026', alg: 'ES256' };
    const retiring = generateKeyPairSync('ed25519');
    const set = { keys: [{ ...(await exportJWK(retiring.publicKey)), kid: 'retiring' }] };
    const files = [
      write('retiring.json', JSON.stringify(set)),
      write('current.jwk', JSON.stringify(privateJwk)),
    ];
    const ring = await loadKeyRing({ keyFile: undefined, keyFiles: files, dataDir: dir });
    assert.equal(ring.signing.kid, 'ec-2026');
    assert.deepEqual([...ring.verifying.keys()].sort(), ['ec-2026', 'retiring']);
    assert.equal(ring.verifying.get('ec-2026')?.publicKey.equals(publicKey), true);
  });

  it('signs with the key SWITCHYARD_JWT_SIGNING_KID names, so a new key can be shared before it signs', async () => {
    const a = write('a.pem', pem(generateKeyPairSync('ed25519').privateKey));
    const b = write('b.pem', pem(generateKeyPairSync('ed25519').privateKey));
    const unpinned = await loadKeyRing({ keyFile: undefined, keyFiles: [a, b], dataDir: dir });
    const oldestKid = [...unpinned.verifying.keys()][0];
    const pinned = await loadKeyRing({
      keyFile: undefined,
      keyFiles: [a, b],
      signingKeyId: oldestKid,
      dataDir: dir,
    });
    assert.notEqual(unpinned.signing.kid, oldestKid);
    assert.equal(pinned.signing.kid, oldestKid);
  });

  it('refuses weak or unsupported keys at startup, listing every problem', async () => {
    const files = [
      write('weak-rsa.pem', pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)),
      write('p384.pem', pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)),
      write('ed448.pem', pem(generateKeyPairSync('ed448').privateKey)),
      write('not-a-key.pem', 'hello'),
      write(
        'encryption.jwk',
        JSON.stringify({
          ...(await exportJWK(generateKeyPairSync('ed25519').privateKey)),
          use: 'enc',
        }),
      ),
    ];
    await assert.rejects(
      loadKeyRing({ keyFile: undefined, keyFiles: files, dataDir: dir }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.problems.length, files.length, error.message);
        assert.match(error.message, /1024 bits/);
        assert.match(error.message, /secp384r1/);
        assert.match(error.message, /ed448/);
        assert.match(error.message, /"use" is "enc"/);
        return true;
      },
    );
  });

  it('refuses a ring with no private key, an unknown pinned kid, and two key sources at once', async () => {
    const onlyPublic = write('public.pem', publicPem(generateKeyPairSync('ed25519').publicKey));
    await assert.rejects(
      loadKeyRing({ keyFile: undefined, keyFiles: [onlyPublic], dataDir: dir }),
      /at least one key must be able to sign/,
    );
    const key = write('one.pem', pem(generateKeyPairSync('ed25519').privateKey));
    await assert.rejects(
      loadKeyRing({ keyFile: undefined, keyFiles: [key], signingKeyId: 'nope', dataDir: dir }),
      /no private key has kid nope/,
    );
    await assert.rejects(
      loadKeyRing({ keyFile: key, keyFiles: [key], dataDir: dir }),
      /set only one of/,
    );
  });
});
