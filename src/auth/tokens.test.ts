import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { SignJWT, base64url, exportJWK } from 'jose';
import { AppError } from '../platform/errors.js';
import { signingKeyFromPem, type KeyRing, type SigningKey } from './keys.js';
import { signAccessToken, verifyAccessToken, type TokenSettings } from './tokens.js';

const settings: TokenSettings = {
  issuer: 'switchyard',
  audience: 'switchyard-api',
  accessTokenTtlSeconds: 900,
  clockSkewSeconds: 30,
};

async function ringOf(...keys: SigningKey[]): Promise<KeyRing> {
  const [signing] = keys;
  if (signing === undefined) throw new Error('no key');
  const verifying = new Map(keys.map((key) => [key.kid, key]));
  return { signing, verifying, jwks: () => ({ keys: keys.map((key) => key.publicJwk) }) };
}

function pemOf(type: 'ed25519' | 'rsa' | 'ec'): string {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

interface Claims {
  [name: string]: unknown;
}

function goodClaims(overrides: Claims = {}): Claims {
  const iat = nowSeconds();
  return {
    iss: settings.issuer,
    aud: settings.audience,
    sub: randomUUID(),
    jti: randomUUID(),
    sid: randomUUID(),
    iat,
    exp: iat + 600,
    adm: false,
    ...overrides,
  };
}

function withoutClaim(name: string): Claims {
  const claims = goodClaims();
  delete claims[name];
  return claims;
}

const encode = (value: unknown) => base64url.encode(JSON.stringify(value));

async function sign(
  key: SigningKey,
  claims: Claims,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header } as never)
    .sign(key.privateKey);
}

/** Builds a token by hand: jose refuses to sign the mismatched ones these tests need. */
function forge(key: SigningKey, claims: Claims, header: Record<string, unknown>): string {
  const input = `${encode({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })}.${encode(claims)}`;
  const data = Buffer.from(input);
  const signature =
    key.alg === 'EdDSA'
      ? cryptoSign(null, data, key.privateKey)
      : cryptoSign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

describe('access tokens', () => {
  let ed: SigningKey;
  let rsa: SigningKey;
  let ec: SigningKey;
  let stranger: SigningKey;
  let ring: KeyRing;

  before(async () => {
    ed = await signingKeyFromPem(pemOf('ed25519'));
    rsa = await signingKeyFromPem(pemOf('rsa'));
    ec = await signingKeyFromPem(pemOf('ec'));
    stranger = await signingKeyFromPem(pemOf('ed25519'));
    ring = await ringOf(ed, rsa, ec);
  });

  it('round-trips a token it signed, with every claim', async () => {
    const subject = { userId: randomUUID(), sessionId: randomUUID(), isInstanceAdmin: true };
    const signed = await signAccessToken(ring, settings, subject);
    const claims = await verifyAccessToken(ring, settings, signed.token);
    assert.equal(claims.userId, subject.userId);
    assert.equal(claims.sessionId, subject.sessionId);
    assert.equal(claims.tokenId, signed.tokenId);
    assert.equal(claims.isInstanceAdmin, true);
    assert.equal(claims.expiresAt.getTime() - claims.issuedAt.getTime(), 900_000);
  });

  it('accepts tokens of every verifying key, each with its own algorithm', async () => {
    for (const key of [ed, rsa, ec]) {
      const claims = await verifyAccessToken(ring, settings, await sign(key, goodClaims()));
      assert.match(claims.userId, /^[0-9a-f-]{36}$/);
    }
  });

  it('accepts a hand-built token with an honest header (the control for the forged cases)', async () => {
    for (const key of [ed, rsa, ec])
      await verifyAccessToken(ring, settings, forge(key, goodClaims(), {}));
  });

  it('accepts clock differences within the skew, both ways', async () => {
    const past = nowSeconds() - 900 - 20;
    const expiredLately = await sign(ed, goodClaims({ iat: past, exp: past + 900 }));
    const issuedAhead = await sign(
      ed,
      goodClaims({ iat: nowSeconds() + 20, exp: nowSeconds() + 620 }),
    );
    await verifyAccessToken(ring, settings, expiredLately);
    await verifyAccessToken(ring, settings, issuedAhead);
  });

  // Each case: a token that must be refused with 401 AUTHENTICATION_FAILED.
  const badTokens: Array<[string, () => Promise<string>]> = [
    [
      'unsigned (alg none)',
      async () => `${encode({ alg: 'none', kid: ed.kid, typ: 'at+jwt' })}.${encode(goodClaims())}.`,
    ],
    [
      'HMAC-signed with the public key as secret (algorithm confusion)',
      async () => {
        const secret = Buffer.from(JSON.stringify(ed.publicJwk));
        const head = `${encode({ alg: 'HS256', kid: ed.kid, typ: 'at+jwt' })}.${encode(goodClaims())}`;
        return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
      },
    ],
    [
      'RS256 header on the Ed25519 key (another algorithm family)',
      async () => forge(ed, goodClaims(), { alg: 'RS256' }),
    ],
    ['ES256 header naming the RSA key', async () => forge(rsa, goodClaims(), { alg: 'ES256' })],
    [
      'PS256 with the RSA key (not the pinned RS256)',
      async () => sign({ ...rsa, alg: 'PS256' as never }, goodClaims()),
    ],
    [
      'signed by a key we do not have, under our kid',
      async () => sign({ ...stranger, kid: ed.kid }, goodClaims()),
    ],
    [
      'carrying its own key in the header (jwk)',
      async () =>
        sign({ ...stranger, kid: ed.kid }, goodClaims(), {
          jwk: await exportJWK(stranger.publicKey),
        }),
    ],
    ['unknown kid', async () => sign({ ...stranger, kid: 'not-a-known-key' }, goodClaims())],
    ['no kid', async () => sign(ed, goodClaims(), { kid: undefined })],
    ['another audience', async () => sign(ed, goodClaims({ aud: 'some-other-api' }))],
    ['an audience list without ours', async () => sign(ed, goodClaims({ aud: ['a', 'b'] }))],
    ['another issuer', async () => sign(ed, goodClaims({ iss: 'https://evil.example' }))],
    ['another token type (an ID token)', async () => sign(ed, goodClaims(), { typ: 'JWT' })],
    [
      'expired beyond the skew',
      async () => sign(ed, goodClaims({ iat: nowSeconds() - 1000, exp: nowSeconds() - 60 })),
    ],
    [
      'issued in the future beyond the skew',
      async () => sign(ed, goodClaims({ iat: nowSeconds() + 120, exp: nowSeconds() + 700 })),
    ],
    ['not valid yet (nbf)', async () => sign(ed, goodClaims({ nbf: nowSeconds() + 300 }))],
    ['exp in milliseconds', async () => sign(ed, goodClaims({ exp: Date.now() + 600_000 }))],
    [
      'iat and exp in milliseconds',
      async () => sign(ed, goodClaims({ iat: Date.now(), exp: Date.now() + 600_000 })),
    ],
    ['fractional time claims', async () => sign(ed, goodClaims({ exp: nowSeconds() + 600.5 }))],
    ['exp as a string', async () => sign(ed, goodClaims({ exp: String(nowSeconds() + 600) }))],
    [
      'longer-lived than the configured lifetime',
      async () => sign(ed, goodClaims({ exp: nowSeconds() + 7200 })),
    ],
    [
      'exp before iat',
      async () => sign(ed, goodClaims({ exp: nowSeconds() - 5, iat: nowSeconds() })),
    ],
    ['missing exp', async () => sign(ed, withoutClaim('exp'))],
    ['missing iat', async () => sign(ed, withoutClaim('iat'))],
    ['missing jti', async () => sign(ed, withoutClaim('jti'))],
    ['missing sub', async () => sign(ed, withoutClaim('sub'))],
    ['missing sid', async () => sign(ed, withoutClaim('sid'))],
    ['a subject that is not a user id', async () => sign(ed, goodClaims({ sub: "1' OR '1'='1" }))],
    ['adm as a string', async () => sign(ed, goodClaims({ adm: 'true' }))],
    [
      'an unknown critical header',
      async () => forge(ed, goodClaims(), { crit: ['x-unknown'], 'x-unknown': 1 }),
    ],
    [
      'a payload changed after signing',
      async () => {
        const [head, , signature] = (await sign(ed, goodClaims())).split('.');
        return `${head}.${encode(goodClaims({ adm: true }))}.${signature}`;
      },
    ],
    ['not a JWT at all', async () => 'garbage'],
    [
      'two parts only',
      async () => `${encode({ alg: 'EdDSA', kid: ed.kid })}.${encode(goodClaims())}`,
    ],
  ];

  for (const [name, make] of badTokens) {
    it(`refuses a token: ${name}`, async () => {
      const token = await make();
      await assert.rejects(verifyAccessToken(ring, settings, token), (error: unknown) => {
        assert.ok(error instanceof AppError, `expected AppError, got ${String(error)}`);
        assert.equal(error.code, 'AUTHENTICATION_FAILED');
        return true;
      });
    });
  }

  it('refuses tokens of a key once it is retired from the ring', async () => {
    const token = await sign(rsa, goodClaims());
    const retired = await ringOf(ed, ec);
    await assert.rejects(verifyAccessToken(retired, settings, token), /unknown key/);
  });
});
