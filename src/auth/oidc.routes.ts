import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { commonErrors, Nullable, ProjectParams, Uuid } from '../platform/http/schemas.js';
import { RoleSchema } from '../projects/project.schema.js';
import { clientInfo } from './auth.routes.js';
import { noStore, setSessionCookies } from './cookies.js';
import type { OidcLoginState } from './oidc.service.js';

const STATE_COOKIE = 'sy_oidc';
const STATE_COOKIE_PATH = '/v1/auth/oidc';
const STATE_TTL_SECONDS = 600;

function readState(request: FastifyRequest): OidcLoginState | undefined {
  const raw = request.cookies[STATE_COOKIE];
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(
      Buffer.from(raw, 'base64url').toString('utf8'),
    ) as Partial<OidcLoginState>;
    const isComplete = ['state', 'nonce', 'codeVerifier', 'redirectPath'].every(
      (field) => typeof parsed[field as keyof OidcLoginState] === 'string',
    );
    return isComplete ? (parsed as OidcLoginState) : undefined;
  } catch {
    return undefined;
  }
}

/** Single sign-on: the two browser-facing steps of the authorization code flow. */
export function registerOidcRoutes(app: AppInstance, deps: AppDeps): void {
  const { oidc } = deps.domain;
  const cookieMode = deps.config.auth.cookieSecure;
  const tags = ['auth'];

  app.get('/auth/oidc/login', {
    schema: {
      tags,
      security: [],
      description:
        'Redirects the browser to the identity provider (authorization code flow with PKCE).',
      querystring: Type.Object(
        { redirect: Type.Optional(Type.String({ maxLength: 2048 })) },
        { additionalProperties: false },
      ),
      response: { 302: Type.Null(), ...commonErrors },
    },
    handler: async (request, reply) => {
      const { url, state } = await oidc.beginLogin(request.query.redirect);
      const secure =
        cookieMode === 'always' || (cookieMode === 'auto' && request.protocol === 'https');
      void reply.setCookie(STATE_COOKIE, Buffer.from(JSON.stringify(state)).toString('base64url'), {
        httpOnly: true,
        secure,
        // Lax: the provider sends the browser back with a top-level GET, which carries it.
        sameSite: 'lax',
        path: STATE_COOKIE_PATH,
        maxAge: STATE_TTL_SECONDS,
      });
      noStore(reply);
      return reply.redirect(url, 302);
    },
  });

  app.get('/auth/oidc/callback', {
    schema: {
      tags,
      security: [],
      description: 'Where the identity provider sends the browser back; starts a cookie session.',
      querystring: Type.Object(
        {
          code: Type.Optional(Type.String({ maxLength: 4096 })),
          state: Type.Optional(Type.String({ maxLength: 512 })),
          iss: Type.Optional(Type.String({ maxLength: 2048 })),
          error: Type.Optional(Type.String({ maxLength: 256 })),
          error_description: Type.Optional(Type.String({ maxLength: 2048 })),
          session_state: Type.Optional(Type.String({ maxLength: 512 })),
        },
        { additionalProperties: false },
      ),
      response: { 302: Type.Null(), ...commonErrors },
    },
    handler: async (request, reply) => {
      const query = new URLSearchParams(request.url.split('?')[1] ?? '');
      const session = await oidc.completeLogin(query, readState(request), clientInfo(request));
      void reply.clearCookie(STATE_COOKIE, { path: STATE_COOKIE_PATH });
      setSessionCookies(
        request,
        reply,
        {
          accessToken: session.accessToken,
          refreshToken: session.refreshToken,
          csrfToken: session.csrfToken ?? '',
          accessTtlSeconds: session.expiresIn,
          refreshTtlSeconds: session.refreshExpiresIn,
        },
        cookieMode,
      );
      noStore(reply);
      return reply.redirect(session.redirectPath, 302);
    },
  });
}

const GroupRoles = Type.Object({
  mappings: Type.Array(
    Type.Object({ group: Type.String(), role: RoleSchema, environmentId: Nullable(Uuid) }),
  ),
});

const PutGroupRolesBody = Type.Object(
  {
    mappings: Type.Array(
      Type.Object(
        {
          group: Type.String({ minLength: 1, maxLength: 200 }),
          role: RoleSchema,
          environment: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 100 },
    ),
  },
  { additionalProperties: false },
);

/** Which identity-provider groups get which role in a project at single sign-on. */
export function registerGroupRoleRoutes(app: AppInstance, deps: AppDeps): void {
  const { groupRoles } = deps.domain;
  const tags = ['members'];

  app.get('/projects/:project/group-roles', {
    schema: { tags, params: ProjectParams, response: { 200: GroupRoles, ...commonErrors } },
    handler: async (request) => groupRoles.get(principalOf(request), request.params.project),
  });

  app.put('/projects/:project/group-roles', {
    schema: {
      tags,
      description:
        "Replaces the project's group mappings; they apply at each member's next single sign-on.",
      params: ProjectParams,
      body: PutGroupRolesBody,
      response: { 200: GroupRoles, ...commonErrors },
    },
    handler: async (request) =>
      groupRoles.replace(principalOf(request), request.params.project, request.body.mappings),
  });
}
