import type { FastifyRequest } from 'fastify';
import { AppError } from '../platform/errors.js';
import type { AuthService } from './auth.service.js';
import { ACCESS_COOKIE, CSRF_HEADER } from './cookies.js';

// The scheme is case-insensitive (RFC 9110 11.1); one space, then the token.
const BEARER = /^bearer ([A-Za-z0-9._~+/=-]+)$/i;

/**
 * The onRequest hook of every protected route. Bearer credentials (access tokens and API
 * tokens) come in the Authorization header and need no CSRF token; browser sessions come in
 * the access-token cookie and need one on every request that changes state.
 */
export function authenticationHook(auth: AuthService) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (header !== undefined && header !== '') {
      const match = BEARER.exec(header);
      if (match?.[1] === undefined) {
        throw new AppError(
          'AUTHENTICATION_FAILED',
          'The Authorization header must be "Bearer <token>"',
          {
            headers: { 'www-authenticate': 'Bearer error="invalid_request"' },
          },
        );
      }
      request.principal = await auth.authenticate(match[1]);
    } else {
      const cookie = request.cookies[ACCESS_COOKIE];
      if (cookie === undefined || cookie === '') {
        throw new AppError(
          'AUTHENTICATION_REQUIRED',
          'Send an access token: Authorization: Bearer <token>',
          {
            headers: { 'www-authenticate': 'Bearer' },
          },
        );
      }
      request.principal = await auth.authenticateCookie(cookie, {
        method: request.method,
        csrfHeader: request.headers[CSRF_HEADER],
        clientIp: request.ip,
      });
    }
    request.log = request.log.child({ userId: request.principal.userId });
  };
}
