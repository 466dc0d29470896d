import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { signingKeyFromPem, type KeyRing, type SigningKey } from './keys.js';
import { signAccessToken, type TokenSettings } from './tokens.js';
import { createAccessTokenVerifier } from './token-verifier.js';

const settings: TokenSettings = {
  issuer: 'switchyard',
  audience: 'switchyard-api',
  accessTokenTtlSeconds: 900,
  clockSkewSeconds: 30,
};

/** A ring whose keys a test can take away, to see whether a token is checked again. */
function ringOf(key: SigningKey): KeyRing & { verifying: Map<string, SigningKey> } {
  const verifying = new Map([[key.kid, key]]);
  return { signing: key, verifying, jwks: () => ({ keys: [key.publicJwk] }) };
}

const subject = () => ({ userId: randomUUID(), sessionId: randomUUID(), isInstanceAdmin: false });
const secondsLater = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000);

describe('access token verifier', () => {
  let key: SigningKey;

  before(async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    key = await signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  });

  it('answers a token it verified without checking its signature again', async () => {
    const ring = ringOf(key);
    const verifier = createAccessTokenVerifier(ring, settings);
    const { token } = await signAccessToken(ring, settings, subject());
    const first = await verifier.verify(token);
    ring.verifying.clear();
    assert.deepEqual(await verifier.verify(token), first);
  });

  it('checks a remembered token in full again once it has expired', async () => {
    const ring = ringOf(key);
    const verifier = createAccessTokenVerifier(ring, settings);
    const now = new Date();
    const { token } = await signAccessToken(ring, settings, subject(), now);
    await verifier.verify(token, now);
    const pastSkew = secondsLater(now, settings.accessTokenTtlSeconds + settings.clockSkewSeconds);
    await assert.rejects(verifier.verify(token, pastSkew), /has expired/);
  });

  it('checks a remembered token in full again when the clock steps back', async () => {
    const ring = ringOf(key);
    const verifier = createAccessTokenVerifier(ring, settings);
    const now = new Date();
    const { token } = await signAccessToken(ring, settings, subject(), now);
    await verifier.verify(token, now);
    ring.verifying.clear();
    await assert.rejects(verifier.verify(token, secondsLater(now, -1)), /unknown key/);
  });

  it('remembers no token that failed', async () => {
    const ring = ringOf(key);
    const verifier = createAccessTokenVerifier(ring, settings);
    const { token } = await signAccessToken(ring, settings, subject());
    const [head, payload] = token.split('.');
    const forged = `${head}.${payload}.${'A'.repeat(86)}`;
    for (let attempt = 0; attempt < 2; attempt++)
      await assert.rejects(verifier.verify(forged), /invalid/);
    assert.equal((await verifier.verify(token)).tokenId.length, 36);
  });

  it('forgets the token verified longest ago when full', async () => {
    const ring = ringOf(key);
    const verifier = createAccessTokenVerifier(ring, settings, 2);
    const tokens = await Promise.all(
      [subject(), subject(), subject()].map(
        async (s) => (await signAccessToken(ring, settings, s)).token,
      ),
    );
    for (const token of tokens) await verifier.verify(token);
    ring.verifying.clear();
    await assert.rejects(verifier.verify(tokens[0] ?? ''), /unknown key/);
    await verifier.verify(tokens[1] ?? '');
    await verifier.verify(tokens[2] ?? '');
  });
});
