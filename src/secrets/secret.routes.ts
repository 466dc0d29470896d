import { Type, type TObject } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { AppError } from '../platform/errors.js';
import { principalOf } from '../platform/http/authenticate.js';
import { idempotent } from '../platform/http/idempotency.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { Accepted, commonErrors, IdParams } from '../platform/http/schemas.js';
import {
  Destroyed,
  DestroyBody,
  encodeValue,
  RestoreBody,
  RotateBody,
  RotationSchema,
  SecretSchema,
  SecretValue,
  SecretValueBody,
  SecretVersions,
  valueOfBody,
  VersionQuery,
} from './secret.schema.js';
import type { Caller, ScopeRef } from './secret.service.js';
import { valueMac, type MasterKeyRing } from './secret-crypto.js';

const Name = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' });
const Slug = Type.String({ minLength: 1, maxLength: 63 });

/** The three places secrets live, each a URL prefix and how its params name the scope. */
const SCOPES: Array<{
  prefix: string;
  params: TObject;
  tag: string;
  ref(params: Record<string, string>): ScopeRef;
}> = [
  {
    prefix: '/projects/:project/secrets',
    params: Type.Object({ project: Slug }),
    tag: 'project',
    ref: (p) => ({ kind: 'project', project: p['project'] ?? '' }),
  },
  {
    prefix: '/projects/:project/environments/:env/secrets',
    params: Type.Object({ project: Slug, env: Slug }),
    tag: 'environment',
    ref: (p) => ({ kind: 'environment', project: p['project'] ?? '', environment: p['env'] ?? '' }),
  },
  {
    prefix: '/services/:id/secrets',
    params: IdParams,
    tag: 'service',
    ref: (p) => ({ kind: 'service', serviceId: p['id'] ?? '' }),
  },
];

function callerOf(request: FastifyRequest): Caller {
  return { principal: principalOf(request), requestId: request.id };
}

function paramsOf(request: FastifyRequest): Record<string, string> {
  return request.params as Record<string, string>;
}

/** The body with its value replaced by a MAC under the master key (stable for retries). */
function withoutValue(body: RotateBody, keys: MasterKeyRing): Record<string, unknown> {
  const value = body.generateBytes === undefined ? valueOfBody(body) : undefined;
  const { value: _text, valueBase64: _base64, ...rest } = body;
  return value === undefined ? rest : { ...rest, valueMac: valueMac(keys, value) };
}

function bytesOf(body: SecretValueBody): Buffer {
  const value = valueOfBody(body);
  if (value === undefined)
    throw new AppError('SECRET_VALUE_INVALID', 'Give exactly one of value and valueBase64');
  return value;
}

export function registerSecretRoutes(app: AppInstance, deps: AppDeps): void {
  const { secrets, rotations } = deps.lockbox;
  const tags = ['secrets'];
  const named = (params: TObject) => Type.Composite([params, Type.Object({ name: Name })]);

  for (const scope of SCOPES) {
    const at = (request: FastifyRequest) => scope.ref(paramsOf(request));
    const name = (request: FastifyRequest) => paramsOf(request)['name'] ?? '';
    const one = named(scope.params);
    const about = (what: string) => `${what} (${scope.tag} scope)`;

    app.get(scope.prefix, {
      schema: {
        tags,
        description: about('Lists secrets: names, versions, timestamps; never values'),
        params: scope.params,
        querystring: PageQuery,
        response: { 200: pageOf(SecretSchema), ...commonErrors },
      },
      handler: async (request) =>
        secrets.list(callerOf(request), at(request), toPageRequest(request.query as PageQuery)),
    });
    app.get(`${scope.prefix}/:name`, {
      schema: {
        tags,
        description: about("One secret's metadata"),
        params: one,
        response: { 200: SecretSchema, ...commonErrors },
      },
      handler: async (request) => secrets.get(callerOf(request), at(request), name(request)),
    });
    app.put(`${scope.prefix}/:name`, {
      schema: {
        tags,
        description: about('Writes a new version (creating the secret on its first write)'),
        params: one,
        body: SecretValueBody,
        response: { 200: SecretSchema, ...commonErrors },
      },
      handler: async (request) =>
        secrets.set(
          callerOf(request),
          at(request),
          name(request),
          bytesOf(request.body as SecretValueBody),
        ),
    });
    app.delete(`${scope.prefix}/:name`, {
      schema: {
        tags,
        description: about('Deletes the secret and every version'),
        params: one,
        response: { 204: Type.Null(), ...commonErrors },
      },
      handler: async (request, reply) => {
        await secrets.remove(callerOf(request), at(request), name(request));
        void reply.status(204);
        return null;
      },
    });
    app.get(`${scope.prefix}/:name/value`, {
      schema: {
        tags,
        description: about(
          'Reads a value (the current version unless ?version=); the read is audited',
        ),
        params: one,
        querystring: VersionQuery,
        response: { 200: SecretValue, ...commonErrors },
      },
      handler: async (request, reply) => {
        void reply.header('cache-control', 'no-store');
        const { version } = request.query as { version?: number };
        const read = await secrets.readValue(
          callerOf(request),
          at(request),
          name(request),
          version,
        );
        return {
          name: read.name,
          version: read.version,
          isCurrent: read.isCurrent,
          ...encodeValue(read.value),
        };
      },
    });
    app.get(`${scope.prefix}/:name/versions`, {
      schema: {
        tags,
        description: about('Every version with its state'),
        params: one,
        response: { 200: SecretVersions, ...commonErrors },
      },
      handler: async (request) => secrets.versions(callerOf(request), at(request), name(request)),
    });
    app.post(`${scope.prefix}/:name/restore`, {
      schema: {
        tags,
        description: about('Makes an earlier version current again'),
        params: one,
        body: RestoreBody,
        response: { 200: SecretSchema, ...commonErrors },
      },
      handler: async (request) =>
        secrets.restore(
          callerOf(request),
          at(request),
          name(request),
          (request.body as { version: number }).version,
        ),
    });
    app.post(`${scope.prefix}/:name/destroy`, {
      schema: {
        tags,
        description: about('Destroys old versions for good (Owner)'),
        params: one,
        body: DestroyBody,
        response: { 200: Destroyed, ...commonErrors },
      },
      handler: async (request) =>
        secrets.destroyVersions(
          callerOf(request),
          at(request),
          name(request),
          (request.body as { versions: number[] }).versions,
        ),
    });
    app.post(`${scope.prefix}/:name/rotate`, {
      schema: {
        tags,
        description: about(
          'Rotates the secret as a job: new version, roll deployments, verify, or undo. Honors Idempotency-Key.',
        ),
        params: one,
        body: RotateBody,
        response: { 202: Accepted, ...commonErrors },
      },
      handler: async (request, reply) => {
        const caller = callerOf(request);
        const body = request.body as RotateBody;
        // The idempotency record keeps a hash of the body: give it a keyed MAC, not the value.
        request.body = withoutValue(body, deps.lockbox.keys);
        void reply.status(202);
        return idempotent(deps.database.db, request, reply, caller.principal.userId, 202, () =>
          rotations.request(caller, at(request), name(request), body),
        );
      },
    });
    app.get(`${scope.prefix}/:name/rotations`, {
      schema: {
        tags,
        description: about('Rotation history of the secret'),
        params: one,
        querystring: PageQuery,
        response: { 200: pageOf(RotationSchema), ...commonErrors },
      },
      handler: async (request) =>
        rotations.listForSecret(
          callerOf(request),
          at(request),
          name(request),
          toPageRequest(request.query as PageQuery),
        ),
    });
  }

  app.get('/secret-rotations/:id', {
    schema: { tags, params: IdParams, response: { 200: RotationSchema, ...commonErrors } },
    handler: async (request) => rotations.get(callerOf(request), request.params.id),
  });
  app.get('/services/:id/secret-rotations', {
    schema: {
      tags,
      description: 'Rotations that touched the service',
      params: IdParams,
      querystring: PageQuery,
      response: { 200: pageOf(RotationSchema), ...commonErrors },
    },
    handler: async (request) =>
      rotations.listForService(callerOf(request), request.params.id, toPageRequest(request.query)),
  });
}
