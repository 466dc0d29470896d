import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CookieSerializeOptions } from '@fastify/cookie';

/**
 * Browser sessions. The access token travels in an HttpOnly cookie, the refresh token in
 * another one scoped to the refresh route; both SameSite. A state-changing request must also
 * carry the session's CSRF token in the X-CSRF-Token header: the token is random per
 * session, readable by the page from the `sy_csrf` cookie, and checked against its SHA-256
 * inside the signed access token (a synchronizer token that needs no server-side lookup).
 */
export const ACCESS_COOKIE = 'sy_access';
export const REFRESH_COOKIE = 'sy_refresh';
export const CSRF_COOKIE = 'sy_csrf';
export const CSRF_HEADER = 'x-csrf-token';
export const REFRESH_COOKIE_PATH = '/v1/auth/session';

export type CookieSecurity = 'auto' | 'always' | 'never';

export interface BrowserSession {
  accessToken: string;
  refreshToken: string;
  csrfToken: string;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
}

export function newCsrfToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashCsrfToken(token) };
}

export function hashCsrfToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** True when `header` is the CSRF token whose hash the session's access token carries. */
export function isCsrfTokenValid(
  header: string | string[] | undefined,
  expectedHash: string | undefined,
): boolean {
  if (typeof header !== 'string' || header === '' || expectedHash === undefined) return false;
  const actual = Buffer.from(hashCsrfToken(header), 'hex');
  const expected = Buffer.from(expectedHash, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Secure cookies over TLS, or always/never when the operator says so (TLS ends at a proxy). */
function isSecure(request: FastifyRequest, mode: CookieSecurity): boolean {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return request.protocol === 'https';
}

function base(request: FastifyRequest, mode: CookieSecurity): CookieSerializeOptions {
  return { secure: isSecure(request, mode), sameSite: 'lax', path: '/' };
}

export function setSessionCookies(
  request: FastifyRequest,
  reply: FastifyReply,
  session: BrowserSession,
  mode: CookieSecurity,
): void {
  const options = base(request, mode);
  void reply.setCookie(ACCESS_COOKIE, session.accessToken, {
    ...options,
    httpOnly: true,
    maxAge: session.accessTtlSeconds,
  });
  void reply.setCookie(REFRESH_COOKIE, session.refreshToken, {
    ...options,
    httpOnly: true,
    sameSite: 'strict',
    path: REFRESH_COOKIE_PATH,
    maxAge: session.refreshTtlSeconds,
  });
  void reply.setCookie(CSRF_COOKIE, session.csrfToken, {
    ...options,
    httpOnly: false,
    maxAge: session.refreshTtlSeconds,
  });
}

export function clearSessionCookies(
  request: FastifyRequest,
  reply: FastifyReply,
  mode: CookieSecurity,
): void {
  const options = base(request, mode);
  void reply.clearCookie(ACCESS_COOKIE, { ...options, httpOnly: true });
  void reply.clearCookie(REFRESH_COOKIE, {
    ...options,
    httpOnly: true,
    sameSite: 'strict',
    path: REFRESH_COOKIE_PATH,
  });
  void reply.clearCookie(CSRF_COOKIE, options);
}

/** Token responses must never be stored by a browser or a proxy (RFC 6749 §5.1). */
export function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}
