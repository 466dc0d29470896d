import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf } from '../platform/http/pagination.js';
import { commonErrors, IdParams } from '../platform/http/schemas.js';
import { AuditEvent, AuditEventQuery, AuditExportQuery, VerifyResult } from './audit.schema.js';
import {
  CreateSinkBody,
  RedeliverBody,
  Sink,
  SinkWithCounts,
  SinkWithSecret,
  UpdateSinkBody,
} from './sink.schema.js';

export function registerAuditRoutes(app: AppInstance, deps: AppDeps): void {
  const { service } = deps.audit;
  const tags = ['audit'];

  app.get('/audit-events', {
    schema: {
      tags,
      description:
        'Audit events the caller may see, newest first. Filters: actor, action, resourceType, resourceId, project, environment, outcome, from, to; any other query key is a 400 INVALID_FILTER.',
      querystring: AuditEventQuery,
      response: { 200: pageOf(AuditEvent), ...commonErrors },
    },
    handler: async (request) => service.list(principalOf(request), request.query),
  });

  app.get('/audit-events/verify', {
    schema: {
      tags,
      description:
        'Walks the whole hash chain and its signed checkpoints; reports the first break. Instance admins only.',
      response: { 200: VerifyResult, ...commonErrors },
    },
    handler: async (request) => service.verify(principalOf(request)),
  });

  app.get('/audit-events/export', {
    schema: {
      tags,
      description:
        'Streams the events of a time range as NDJSON (verifiable offline: `switchyard audit verify-export`) or CSV.',
      querystring: AuditExportQuery,
      response: { ...commonErrors },
    },
    handler: async (request, reply) => {
      const result = await service.export(principalOf(request), request.query);
      void reply.header('content-type', result.contentType);
      void reply.header('content-disposition', `attachment; filename="${result.fileName}"`);
      void reply.header('cache-control', 'no-store');
      return reply.send(Readable.from(result.body));
    },
  });

  registerSinkRoutes(app, deps);
}

function registerSinkRoutes(app: AppInstance, deps: AppDeps): void {
  const { sinks } = deps.audit;
  const tags = ['audit sinks'];

  app.post('/audit-sinks', {
    schema: {
      tags,
      description:
        'Adds a compliance sink (instance admins). The answer carries the HMAC signing secret once.',
      body: CreateSinkBody,
      response: { 201: SinkWithSecret, ...commonErrors },
    },
    handler: async (request, reply) => {
      const sink = await sinks.create(principalOf(request), request.body);
      void reply.status(201);
      return sink;
    },
  });

  app.get('/audit-sinks', {
    schema: { tags, querystring: PageQuery, response: { 200: pageOf(Sink), ...commonErrors } },
    handler: async (request) =>
      sinks.list(principalOf(request), {
        limit: request.query.limit ?? 20,
        cursor: request.query.cursor,
      }),
  });

  app.get('/audit-sinks/:id', {
    schema: { tags, params: IdParams, response: { 200: SinkWithCounts, ...commonErrors } },
    handler: async (request) => sinks.get(principalOf(request), request.params.id),
  });

  app.patch('/audit-sinks/:id', {
    schema: {
      tags,
      params: IdParams,
      body: UpdateSinkBody,
      response: { 200: Sink, ...commonErrors },
    },
    handler: async (request) =>
      sinks.setStatus(principalOf(request), request.params.id, request.body.status),
  });

  app.delete('/audit-sinks/:id', {
    schema: { tags, params: IdParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await sinks.remove(principalOf(request), request.params.id);
      void reply.status(204);
      return null;
    },
  });

  app.post('/audit-sinks/:id/redeliver', {
    schema: {
      tags,
      description:
        'Puts dead-lettered events back in line: all of them, or the chain positions listed.',
      params: IdParams,
      body: RedeliverBody,
      response: { 200: Type.Object({ requeued: Type.Integer() }), ...commonErrors },
    },
    handler: async (request) =>
      sinks.redeliver(principalOf(request), request.params.id, request.body.seqs),
  });
}
