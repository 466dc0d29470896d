import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { idempotent } from '../platform/http/idempotency.js';
import { pageOf, toPageRequest } from '../platform/http/pagination.js';
import { Accepted, commonErrors, IdParams } from '../platform/http/schemas.js';
import { scrubKnownSecrets } from '../platform/http/scrubbed.js';
import { sendEventStream } from '../platform/http/sse.js';
import {
  CreateDeploymentBody,
  DeploymentLogs,
  DeploymentLogsQuery,
  DeploymentSchema,
  ListDeploymentsQuery,
  RollbackBody,
  ServiceStatus,
  StatusQuery,
} from './deployment.schema.js';

export function registerDeploymentRoutes(app: AppInstance, deps: AppDeps): void {
  const { deployments } = deps.domain;
  const tags = ['deployments'];

  app.post('/services/:id/deployments', {
    schema: {
      tags,
      description:
        'Deploys a release (the latest when releaseId is absent) to an environment. Honors Idempotency-Key.',
      params: IdParams,
      body: CreateDeploymentBody,
      response: { 202: Accepted, ...commonErrors },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      void reply.status(202);
      return idempotent(deps.database.db, request, reply, principal.userId, 202, () =>
        deployments.create(principal, request.params.id, request.body),
      );
    },
  });

  app.post('/services/:id/rollback', {
    schema: {
      tags,
      description:
        'Re-points an environment to an earlier release without rebuilding. Honors Idempotency-Key.',
      params: IdParams,
      body: RollbackBody,
      response: { 202: Accepted, ...commonErrors },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      void reply.status(202);
      return idempotent(deps.database.db, request, reply, principal.userId, 202, () =>
        deployments.rollback(principal, request.params.id, request.body),
      );
    },
  });

  app.get('/services/:id/deployments', {
    schema: {
      tags,
      params: IdParams,
      querystring: ListDeploymentsQuery,
      response: { 200: pageOf(DeploymentSchema), ...commonErrors },
    },
    handler: async (request) =>
      deployments.list(
        principalOf(request),
        request.params.id,
        toPageRequest(request.query),
        request.query.environment,
      ),
  });

  app.get('/services/:id/status', {
    schema: {
      tags,
      params: IdParams,
      querystring: StatusQuery,
      response: { 200: ServiceStatus, ...commonErrors },
    },
    handler: async (request) =>
      deployments.status(principalOf(request), request.params.id, request.query.environment),
  });

  app.get('/deployments/:id', {
    schema: { tags, params: IdParams, response: { 200: DeploymentSchema, ...commonErrors } },
    handler: async (request) => deployments.get(principalOf(request), request.params.id),
  });

  app.get('/deployments/:id/logs', {
    schema: {
      tags,
      description: 'Workload output. With ?follow=true, a text/event-stream of `log` events.',
      params: IdParams,
      querystring: DeploymentLogsQuery,
      response: { 200: DeploymentLogs, ...commonErrors },
    },
    preSerialization: scrubKnownSecrets,
    handler: async (request, reply) => {
      const principal = principalOf(request);
      if (request.query.follow !== true)
        return deployments.logs(principal, request.params.id, request.query.tail);
      const stream = await deployments.followLogs(principal, request.params.id, request.query.tail);
      await sendEventStream(request, reply, stream);
      return reply;
    },
  });
}
