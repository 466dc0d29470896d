import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AppInstance, AppDeps } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, Uuid } from '../platform/http/schemas.js';
import { AppError } from '../platform/errors.js';
import { assertSignedInPerson } from '../access/scopes.js';
import type { ClientInfo } from './auth.service.js';
import {
  BrowserSessionSchema,
  SignUpAcceptedSchema,
  VerifySignUpBody,
  passwordSchemas,
  SessionSchema,
  TokenPair,
  User,
} from './auth.schema.js';
import {
  CSRF_HEADER,
  REFRESH_COOKIE,
  clearSessionCookies,
  noStore,
  setSessionCookies,
} from './cookies.js';

export { User } from './auth.schema.js';

export function clientInfo(request: FastifyRequest): ClientInfo {
  return {
    ip: request.ip,
    userAgent: request.headers['user-agent']?.slice(0, 512),
    requestId: String(request.id),
  };
}

/** Sign-up and sign-in: the /v1 routes that take no access token. */
export function registerPublicAuthRoutes(app: AppInstance, deps: AppDeps): void {
  const { auth, signUp } = deps.domain;
  const { RegisterBody, LoginBody } = passwordSchemas(deps.config.auth.password);
  const cookieMode = deps.config.auth.cookieSecure;
  const tags = ['auth'];

  app.post('/auth/register', {
    schema: {
      tags,
      security: [],
      description:
        'Signs up. Answers 202 with the same body for every address, taken or not; `next` says whether to sign in now or redeem the mailed token first (the sign-up mode). 403 SIGN_UP_CLOSED when only instance admins create users.',
      body: RegisterBody,
      response: { 202: SignUpAcceptedSchema, ...commonErrors },
    },
    handler: async (request, reply) => {
      const accepted = await signUp.register(request.body, clientInfo(request));
      void reply.status(202);
      return accepted;
    },
  });

  app.post('/auth/verify', {
    schema: {
      tags,
      security: [],
      description:
        'Redeems the token mailed at sign-up: creates the account and answers it. The token works once, until it expires.',
      body: VerifySignUpBody,
      response: { 200: User, ...commonErrors },
    },
    handler: async (request) => signUp.verify(request.body.token, clientInfo(request)),
  });

  app.post('/auth/login', {
    schema: { tags, security: [], body: LoginBody, response: { 200: TokenPair, ...commonErrors } },
    handler: async (request, reply) => {
      const session = await auth.login(request.body, clientInfo(request), 'bearer');
      noStore(reply);
      return session;
    },
  });

  app.post('/auth/refresh', {
    schema: {
      tags,
      security: [],
      body: Type.Object(
        { refreshToken: Type.String({ minLength: 1, maxLength: 512 }) },
        { additionalProperties: false },
      ),
      response: { 200: TokenPair, ...commonErrors },
    },
    handler: async (request, reply) => {
      const session = await auth.refresh(request.body.refreshToken, clientInfo(request), 'bearer');
      noStore(reply);
      return session;
    },
  });

  app.post('/auth/session', {
    schema: {
      tags,
      security: [],
      description:
        'Signs a browser in with cookies (HttpOnly, SameSite) and answers the CSRF token to send in X-CSRF-Token.',
      body: LoginBody,
      response: { 200: BrowserSessionSchema, ...commonErrors },
    },
    handler: async (request, reply) => {
      const session = await auth.login(request.body, clientInfo(request), 'cookie');
      return browserSession(request, reply, session);
    },
  });

  app.post('/auth/session/refresh', {
    schema: {
      tags,
      security: [],
      description:
        "Rotates a browser session's cookies. Needs the refresh cookie and the X-CSRF-Token header.",
      response: { 200: BrowserSessionSchema, ...commonErrors },
    },
    handler: async (request, reply) => {
      const refreshToken = request.cookies[REFRESH_COOKIE];
      if (refreshToken === undefined || refreshToken === '') {
        throw new AppError('AUTHENTICATION_REQUIRED', 'No session cookie was sent');
      }
      const session = await auth.refresh(
        refreshToken,
        clientInfo(request),
        'cookie',
        request.headers[CSRF_HEADER],
      );
      return browserSession(request, reply, session);
    },
  });

  function browserSession(
    request: FastifyRequest,
    reply: Parameters<typeof noStore>[0],
    session: Awaited<ReturnType<typeof auth.login>>,
  ) {
    const csrfToken = session.csrfToken ?? '';
    setSessionCookies(
      request,
      reply,
      {
        accessToken: session.accessToken,
        refreshToken: session.refreshToken,
        csrfToken,
        accessTtlSeconds: session.expiresIn,
        refreshTtlSeconds: session.refreshExpiresIn,
      },
      cookieMode,
    );
    noStore(reply);
    return { csrfToken, expiresIn: session.expiresIn, refreshExpiresIn: session.refreshExpiresIn };
  }
}

export function registerAuthRoutes(app: AppInstance, deps: AppDeps): void {
  const { auth, accounts } = deps.domain;
  const { ChangePasswordBody } = passwordSchemas(deps.config.auth.password);
  const tags = ['auth'];

  app.post('/auth/logout', {
    schema: { tags, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      assertSignedInPerson(principal);
      await auth.logout(principal);
      if (principal.credential.kind === 'session' && principal.credential.transport === 'cookie') {
        clearSessionCookies(request, reply, deps.config.auth.cookieSecure);
      }
      void reply.status(204);
      return null;
    },
  });

  app.get('/me', {
    schema: { tags, response: { 200: User, ...commonErrors } },
    handler: async (request) => accounts.me(principalOf(request)),
  });

  app.get('/me/sessions', {
    schema: {
      tags: ['sessions'],
      querystring: PageQuery,
      response: { 200: pageOf(SessionSchema), ...commonErrors },
    },
    handler: async (request) =>
      accounts.listSessions(principalOf(request), toPageRequest(request.query)),
  });

  app.delete('/me/sessions/:id', {
    schema: {
      tags: ['sessions'],
      description: 'Signs that session out at once, on every replica.',
      params: Type.Object({ id: Uuid }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...commonErrors },
    },
    handler: async (request, reply) => {
      await accounts.revokeSession(principalOf(request), request.params.id);
      void reply.status(204);
      return null;
    },
  });

  app.post('/me/password', {
    schema: {
      tags,
      description: 'Changes the password and signs out every other session.',
      body: ChangePasswordBody,
      response: { 204: Type.Null(), ...commonErrors },
    },
    handler: async (request, reply) => {
      await accounts.changePassword(principalOf(request), request.body, clientInfo(request));
      void reply.status(204);
      return null;
    },
  });
}
