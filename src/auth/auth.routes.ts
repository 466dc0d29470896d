import { Type } from '@sinclair/typebox';
import type { AppInstance, AppDeps } from '../platform/app.js';
import { clientOf, principalOf } from '../platform/http/authenticate.js';
import { commonErrors, Timestamp, Uuid } from '../platform/http/schemas.js';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './password.js';

const TokenPair = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
});

export const User = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  isInstanceAdmin: Type.Boolean(),
  createdAt: Timestamp,
});

const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 });
const Password = Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH });

/** Sign-up and sign-in: the only /v1 routes that take no access token. */
export function registerPublicAuthRoutes(app: AppInstance, deps: AppDeps): void {
  const { auth } = deps.domain;
  const tags = ['auth'];

  app.post('/auth/register', {
    schema: {
      tags,
      body: Type.Object(
        { email: Email, password: Password, name: Type.String({ minLength: 1, maxLength: 200 }) },
        { additionalProperties: false },
      ),
      response: { 201: User, ...commonErrors },
    },
    handler: async (request, reply) => {
      const user = await auth.register(request.body);
      void reply.status(201);
      return {
        id: user.id,
        email: user.email,
        name: user.name,
        isInstanceAdmin: user.is_instance_admin,
        createdAt: user.created_at.toISOString(),
      };
    },
  });

  app.post('/auth/login', {
    schema: {
      tags,
      body: Type.Object(
        { email: Email, password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }) },
        { additionalProperties: false },
      ),
      response: { 200: TokenPair, ...commonErrors },
    },
    handler: async (request) => auth.login(request.body, clientOf(request)),
  });

  app.post('/auth/refresh', {
    schema: {
      tags,
      body: Type.Object({ refreshToken: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false }),
      response: { 200: TokenPair, ...commonErrors },
    },
    handler: async (request) => auth.refresh(request.body.refreshToken, clientOf(request)),
  });
}

export function registerAuthRoutes(app: AppInstance, deps: AppDeps): void {
  const { auth } = deps.domain;

  app.post('/auth/logout', {
    schema: { tags: ['auth'], response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await auth.logout(principalOf(request));
      void reply.status(204);
      return null;
    },
  });

  app.get('/me', {
    schema: { tags: ['auth'], response: { 200: User, ...commonErrors } },
    handler: async (request) => {
      const principal = principalOf(request);
      const user = await auth.getUser(principal.userId);
      return {
        id: user.id,
        email: user.email,
        name: user.name,
        isInstanceAdmin: user.is_instance_admin,
        createdAt: user.created_at.toISOString(),
      };
    },
  });
}
