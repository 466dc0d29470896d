import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { AppError } from '../platform/errors.js';
import type { KeyRing } from './keys.js';

export interface AccessClaims {
  userId: string;
  sessionId: string;
  tokenId: string;
  expiresAt: Date;
}

export interface TokenSettings {
  issuer: string;
  audience: string;
  accessTokenTtlSeconds: number;
  clockToleranceSeconds?: number;
}

export async function signAccessToken(
  keys: KeyRing,
  settings: TokenSettings,
  subject: { userId: string; sessionId: string },
): Promise<{ token: string; tokenId: string; expiresIn: number }> {
  const tokenId = randomUUID();
  const token = await new SignJWT({ sid: subject.sessionId })
    .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: 'at+jwt' })
    .setIssuer(settings.issuer)
    .setAudience(settings.audience)
    .setSubject(subject.userId)
    .setJti(tokenId)
    .setIssuedAt()
    .setExpirationTime(`${settings.accessTokenTtlSeconds}s`)
    .sign(keys.signing.privateKey);
  return { token, tokenId, expiresIn: settings.accessTokenTtlSeconds };
}

const rejected = (message: string, cause?: unknown) =>
  new AppError('AUTHENTICATION_FAILED', message, { cause });

/** Verifies signature, algorithm, issuer, audience and time claims; throws 401 otherwise. */
export async function verifyAccessToken(
  keys: KeyRing,
  settings: TokenSettings,
  token: string,
): Promise<AccessClaims> {
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch (error) {
    throw rejected('The access token is malformed', error);
  }
  const key = kid === undefined ? undefined : keys.verifying.get(kid);
  if (key === undefined) throw rejected('The access token was signed by an unknown key');
  try {
    const { payload } = await jwtVerify(token, key.publicKey, {
      algorithms: [key.alg],
      issuer: settings.issuer,
      audience: settings.audience,
      typ: 'at+jwt',
      requiredClaims: ['sub', 'jti', 'iat', 'exp', 'sid'],
      clockTolerance: settings.clockToleranceSeconds ?? 30,
    });
    const { sub, jti, exp, sid } = payload;
    if (typeof sub !== 'string' || typeof jti !== 'string' || typeof sid !== 'string') {
      throw rejected('The access token is missing claims');
    }
    return { userId: sub, sessionId: sid, tokenId: jti, expiresAt: new Date((exp ?? 0) * 1000) };
  } catch (error) {
    if (error instanceof AppError) throw error;
    if (error instanceof joseErrors.JWTExpired) throw rejected('The access token has expired', error);
    throw rejected('The access token is invalid', error);
  }
}

/** An opaque refresh token: shown to the client once, stored only as its hash. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = `syr_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashOpaqueToken(token) };
}

export function hashOpaqueToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
