import type { FastifyRequest } from 'fastify';
import type { AuthService, Principal } from '../../auth/auth.service.js';
import { AppError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

/** The onRequest hook of every protected route: a valid, unrevoked bearer token or 401. */
export function authenticateHook(auth: AuthService) {
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      throw new AppError('AUTHENTICATION_REQUIRED', 'Send an access token: Authorization: Bearer <token>', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
    const match = BEARER.exec(header);
    if (match?.[1] === undefined) {
      throw new AppError('AUTHENTICATION_FAILED', 'The Authorization header must be "Bearer <token>"', {
        headers: { 'www-authenticate': 'Bearer error="invalid_request"' },
      });
    }
    request.principal = await auth.authenticate(match[1]);
    request.log = request.log.child({ userId: request.principal.userId });
  };
}

/** The authenticated caller; only valid on routes behind authenticateHook. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) {
    throw new AppError('AUTHENTICATION_REQUIRED', 'Authentication required');
  }
  return request.principal;
}

export function clientOf(request: FastifyRequest): { ip: string; userAgent: string | undefined } {
  return { ip: request.ip, userAgent: request.headers['user-agent']?.slice(0, 512) };
}
