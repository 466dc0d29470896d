import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import type { Config } from '../platform/config.js';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { registerAdminUserRoutes } from './admin-user.routes.js';
import { registerApiTokenRoutes } from './api-token.routes.js';
import { registerAuthRoutes, registerPublicAuthRoutes } from './auth.routes.js';
import { registerGroupRoleRoutes, registerOidcRoutes } from './oidc.routes.js';

const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * A Content-Security-Policy for API answers, cookie parsing for browser sessions, and CORS:
 * closed (no CORS headers at all) unless SWITCHYARD_CORS_ORIGINS lists the origins browsers
 * may call the API from.
 */
export async function registerBrowserSupport(
  app: AppInstance,
  config: Readonly<Config>,
): Promise<void> {
  await app.register(cookie);
  // JSON answers never load anything nor get framed; the docs page brings its own scripts.
  app.addHook('onRequest', (request, reply, done) => {
    if (!request.url.startsWith('/docs')) void reply.header('content-security-policy', API_CSP);
    done();
  });
  if (config.cors.allowedOrigins.length === 0) return;
  await app.register(cors, {
    origin: [...config.cors.allowedOrigins],
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: [
      'authorization',
      'content-type',
      'idempotency-key',
      'x-csrf-token',
      'x-request-id',
    ],
    exposedHeaders: ['x-request-id', 'retry-after', 'deprecation', 'sunset'],
    maxAge: 600,
  });
}

/** Routes that take no credentials: sign-up, sign-in, refresh, single sign-on. */
export function registerPublicIdentityRoutes(app: AppInstance, deps: AppDeps): void {
  registerPublicAuthRoutes(app, deps);
  registerOidcRoutes(app, deps);
}

/** The caller's account, sessions and API tokens; user administration; SSO group roles. */
export function registerIdentityRoutes(app: AppInstance, deps: AppDeps): void {
  registerAuthRoutes(app, deps);
  registerApiTokenRoutes(app, deps);
  registerAdminUserRoutes(app, deps);
  registerGroupRoleRoutes(app, deps);
}
