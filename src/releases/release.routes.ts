import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, IdParams } from '../platform/http/schemas.js';
import { ReleaseSchema } from './release.schema.js';

export function registerReleaseRoutes(app: AppInstance, deps: AppDeps): void {
  const { releases } = deps.domain;
  const tags = ['releases'];

  app.get('/services/:id/releases', {
    schema: {
      tags,
      params: IdParams,
      querystring: PageQuery,
      response: { 200: pageOf(ReleaseSchema), ...commonErrors },
    },
    handler: async (request) =>
      releases.list(principalOf(request), request.params.id, toPageRequest(request.query)),
  });

  app.get('/releases/:id', {
    schema: { tags, params: IdParams, response: { 200: ReleaseSchema, ...commonErrors } },
    handler: async (request) => releases.get(principalOf(request), request.params.id),
  });
}
