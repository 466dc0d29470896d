import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../auth/auth.service.js';
import { AppError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** The authenticated caller; only valid on routes behind the authentication hook (src/auth/auth.hook.ts). */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) {
    throw new AppError('AUTHENTICATION_REQUIRED', 'Authentication required');
  }
  return request.principal;
}

export function clientOf(request: FastifyRequest): { ip: string; userAgent: string | undefined } {
  return { ip: request.ip, userAgent: request.headers['user-agent']?.slice(0, 512) };
}
