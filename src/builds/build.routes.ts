import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { idempotent } from '../platform/http/idempotency.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { Accepted, commonErrors, IdParams } from '../platform/http/schemas.js';
import { scrubKnownSecrets } from '../platform/http/scrubbed.js';
import { sendEventStream } from '../platform/http/sse.js';
import { BuildLogs, BuildSchema, CreateBuildBody, LogsQuery } from './build.schema.js';

export function registerBuildRoutes(app: AppInstance, deps: AppDeps): void {
  const { builds } = deps.domain;
  const tags = ['builds'];

  app.post('/services/:id/builds', {
    schema: {
      tags,
      description:
        'Queues a build of the ref (default: the service branch). Honors Idempotency-Key.',
      params: IdParams,
      body: CreateBuildBody,
      response: { 202: Accepted, ...commonErrors },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      void reply.status(202);
      return idempotent(deps.database.db, request, reply, principal.userId, 202, () =>
        builds.create(principal, request.params.id, request.body ?? {}),
      );
    },
  });

  app.get('/services/:id/builds', {
    schema: {
      tags,
      params: IdParams,
      querystring: PageQuery,
      response: { 200: pageOf(BuildSchema), ...commonErrors },
    },
    handler: async (request) =>
      builds.list(principalOf(request), request.params.id, toPageRequest(request.query)),
  });

  app.get('/builds/:id', {
    schema: { tags, params: IdParams, response: { 200: BuildSchema, ...commonErrors } },
    handler: async (request) => builds.get(principalOf(request), request.params.id),
  });

  app.get('/builds/:id/logs', {
    schema: {
      tags,
      description:
        'Build output. With ?follow=true, a text/event-stream of `log` events and a final `end` event.',
      params: IdParams,
      querystring: LogsQuery,
      response: { 200: BuildLogs, ...commonErrors },
    },
    preSerialization: scrubKnownSecrets,
    handler: async (request, reply) => {
      const principal = principalOf(request);
      if (request.query.follow !== true) return builds.logs(principal, request.params.id);
      const stream = await builds.followLogs(principal, request.params.id);
      await sendEventStream(request, reply, stream);
      return reply;
    },
  });
}
