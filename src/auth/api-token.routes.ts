import { Type } from '@sinclair/typebox';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, IdParams } from '../platform/http/schemas.js';
import { ApiTokenSchema, CreateApiTokenBody, CreatedApiToken } from './auth.schema.js';
import { noStore } from './cookies.js';

export function registerApiTokenRoutes(app: AppInstance, deps: AppDeps): void {
  const { apiTokens } = deps.domain;
  const tags = ['api tokens'];

  app.post('/me/tokens', {
    schema: {
      tags,
      description: 'Creates a personal API token (prefix syt_). The secret is in this answer only.',
      body: CreateApiTokenBody,
      response: { 201: CreatedApiToken, ...commonErrors },
    },
    handler: async (request, reply) => {
      const created = await apiTokens.create(principalOf(request), request.body);
      noStore(reply);
      void reply.status(201);
      return created;
    },
  });

  app.get('/me/tokens', {
    schema: {
      tags,
      querystring: PageQuery,
      response: { 200: pageOf(ApiTokenSchema), ...commonErrors },
    },
    handler: async (request) => apiTokens.list(principalOf(request), toPageRequest(request.query)),
  });

  app.delete('/me/tokens/:id', {
    schema: { tags, params: IdParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await apiTokens.revoke(principalOf(request), request.params.id);
      void reply.status(204);
      return null;
    },
  });
}
