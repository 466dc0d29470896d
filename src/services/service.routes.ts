import { Type } from '@sinclair/typebox';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, IdParams, ProjectParams } from '../platform/http/schemas.js';
import {
  CreateServiceBody,
  PutVariablesBody,
  ServiceSchema,
  UpdateServiceBody,
  Variables,
} from './service.schema.js';

export function registerServiceRoutes(app: AppInstance, deps: AppDeps): void {
  const { services, deployments } = deps.domain;
  const tags = ['services'];

  app.post('/projects/:project/services', {
    schema: {
      tags,
      params: ProjectParams,
      body: CreateServiceBody,
      response: { 201: ServiceSchema, ...commonErrors },
    },
    handler: async (request, reply) => {
      const service = await services.create(
        principalOf(request),
        request.params.project,
        request.body,
      );
      void reply.status(201);
      return service;
    },
  });

  app.get('/projects/:project/services', {
    schema: {
      tags,
      params: ProjectParams,
      querystring: PageQuery,
      response: { 200: pageOf(ServiceSchema), ...commonErrors },
    },
    handler: async (request) =>
      services.list(principalOf(request), request.params.project, toPageRequest(request.query)),
  });

  app.get('/services/:id', {
    schema: { tags, params: IdParams, response: { 200: ServiceSchema, ...commonErrors } },
    handler: async (request) => services.get(principalOf(request), request.params.id),
  });

  app.patch('/services/:id', {
    schema: {
      tags,
      params: IdParams,
      body: UpdateServiceBody,
      response: { 200: ServiceSchema, ...commonErrors },
    },
    handler: async (request) =>
      services.update(principalOf(request), request.params.id, request.body),
  });

  app.delete('/services/:id', {
    schema: { tags, params: IdParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await services.remove(principalOf(request), request.params.id, deployments.stopService);
      void reply.status(204);
      return null;
    },
  });

  app.get('/services/:id/env', {
    schema: {
      tags: ['variables'],
      params: IdParams,
      response: { 200: Variables, ...commonErrors },
    },
    handler: async (request, reply) => {
      void reply.header('cache-control', 'no-store');
      return services.getVariables(principalOf(request), request.params.id);
    },
  });

  app.put('/services/:id/env', {
    schema: {
      tags: ['variables'],
      params: IdParams,
      body: PutVariablesBody,
      response: { 200: Variables, ...commonErrors },
    },
    handler: async (request, reply) => {
      void reply.header('cache-control', 'no-store');
      return services.putVariables(principalOf(request), request.params.id, request.body.variables);
    },
  });

  app.post('/services/:id/env/import', {
    schema: {
      tags: ['variables'],
      description:
        'Merges a .env file (text/plain body) into the variables. Grammar: docs/dotenv.md.',
      params: IdParams,
      body: Type.String({ maxLength: 1_048_576 }),
      response: { 200: Variables, ...commonErrors },
    },
    handler: async (request, reply) => {
      void reply.header('cache-control', 'no-store');
      return services.importVariables(principalOf(request), request.params.id, request.body);
    },
  });
}
