import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  SignJWT,
  jwtVerify,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
} from 'jose';
import { AppError } from '../platform/errors.js';
import type { KeyRing } from './keys.js';

/** What a verified access token says about its bearer. */
export interface AccessClaims {
  userId: string;
  sessionId: string;
  tokenId: string;
  issuedAt: Date;
  expiresAt: Date;
  isInstanceAdmin: boolean;
  /** Set for browser (cookie) sessions: the SHA-256 of the session's CSRF token. */
  csrfHash: string | undefined;
}

export interface TokenSettings {
  issuer: string;
  audience: string;
  accessTokenTtlSeconds: number;
  /** Accepted difference between our clock and the signer's, both ways. */
  clockSkewSeconds: number;
}

export interface AccessSubject {
  userId: string;
  sessionId: string;
  isInstanceAdmin: boolean;
  csrfHash?: string | undefined;
}

const TOKEN_TYPE = 'at+jwt';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function signAccessToken(
  keys: KeyRing,
  settings: TokenSettings,
  subject: AccessSubject,
  now = new Date(),
): Promise<{ token: string; tokenId: string; expiresIn: number }> {
  const tokenId = randomUUID();
  const issuedAt = Math.floor(now.getTime() / 1000);
  // `adm` spares each request a user lookup. Whatever changes is_instance_admin must revoke
  // the user's sessions, or the old value lives until the token expires.
  const claims: JWTPayload = { sid: subject.sessionId, adm: subject.isInstanceAdmin };
  if (subject.csrfHash !== undefined) claims['cth'] = subject.csrfHash;
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: TOKEN_TYPE })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(subject.userId)
    .setJti(tokenId)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + settings.accessTokenTtlSeconds)
    .sign(keys.signing.privateKey);
  return { token, tokenId, expiresIn: settings.accessTokenTtlSeconds };
}

const rejected = (message: string, cause?: unknown) =>
  new AppError('AUTHENTICATION_FAILED', message, { cause });

/**
 * Verifies an access token: a known kid, the algorithm pinned to that key's type, the
 * signature, `typ`, issuer, audience, and every time claim in whole seconds within the
 * configured lifetime and clock skew. Throws 401 AUTHENTICATION_FAILED otherwise.
 */
export async function verifyAccessToken(
  keys: KeyRing,
  settings: TokenSettings,
  token: string,
  now = new Date(),
): Promise<AccessClaims> {
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch (error) {
    throw rejected('The access token is malformed', error);
  }
  const key = typeof header.kid === 'string' ? keys.verifying.get(header.kid) : undefined;
  if (key === undefined) throw rejected('The access token was signed by an unknown key');
  if (header.alg !== key.alg)
    throw rejected('The access token names an algorithm its key does not use');

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key.publicKey, {
      algorithms: [key.alg],
      issuer: settings.issuer,
      audience: settings.audience,
      typ: TOKEN_TYPE,
      requiredClaims: ['iss', 'aud', 'sub', 'jti', 'iat', 'exp', 'sid'],
      clockTolerance: settings.clockSkewSeconds,
      currentDate: now,
    }));
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired)
      throw rejected('The access token has expired', error);
    throw rejected('The access token is invalid', error);
  }
  return checkClaims(payload, settings, now);
}

/** The checks jose leaves to us: units, lifetime, issue time, and the shape of our claims. */
function checkClaims(payload: JWTPayload, settings: TokenSettings, now: Date): AccessClaims {
  const { sub, jti, iat, exp, nbf } = payload;
  const sid = payload['sid'];
  const adm = payload['adm'];
  const cth = payload['cth'];
  const nowSeconds = now.getTime() / 1000;
  const isWholeSeconds = [iat, exp, nbf].every(
    (value) => value === undefined || Number.isInteger(value),
  );
  if (!isWholeSeconds || typeof iat !== 'number' || typeof exp !== 'number') {
    throw rejected('The access token has malformed time claims');
  }
  // A token in milliseconds lands thousands of years ahead: refuse anything past our lifetime.
  if (
    iat > nowSeconds + settings.clockSkewSeconds ||
    exp - iat > settings.accessTokenTtlSeconds ||
    exp <= iat
  ) {
    throw rejected('The access token has time claims outside its lifetime');
  }
  const isWellFormed =
    typeof sub === 'string' &&
    UUID.test(sub) &&
    typeof jti === 'string' &&
    UUID.test(jti) &&
    typeof sid === 'string' &&
    UUID.test(sid) &&
    (adm === undefined || typeof adm === 'boolean') &&
    (cth === undefined || (typeof cth === 'string' && /^[0-9a-f]{64}$/.test(cth)));
  if (!isWellFormed) throw rejected('The access token is missing claims');
  return {
    userId: sub,
    sessionId: sid,
    tokenId: jti,
    issuedAt: new Date(iat * 1000),
    expiresAt: new Date(exp * 1000),
    isInstanceAdmin: adm === true,
    csrfHash: cth,
  };
}

/** An opaque refresh token: shown to the client once, stored only as its hash. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = `syr_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashOpaqueToken(token) };
}

export function hashOpaqueToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
