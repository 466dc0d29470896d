import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import {
  assertError,
  assertErrorEnvelope,
  RANDOM_ID,
  type User,
  FAST_HASHING,
} from './fixtures.js';

interface Operation {
  method: string;
  path: string;
  security: unknown;
  requestBody?: { content?: Record<string, unknown> };
}

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Omit<Operation, 'method' | 'path'>>>;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch']);

// The core routes of the SPEC that clients and the CLI rely on.
const CORE_ROUTES = [
  'POST /v1/auth/register',
  'POST /v1/auth/login',
  'POST /v1/auth/refresh',
  'POST /v1/auth/logout',
  'GET /v1/me',
  'POST /v1/projects',
  'GET /v1/projects',
  'GET /v1/projects/{project}',
  'PATCH /v1/projects/{project}',
  'DELETE /v1/projects/{project}',
  'GET /v1/projects/{project}/environments',
  'POST /v1/projects/{project}/environments',
  'GET /v1/projects/{project}/environments/{env}',
  'PATCH /v1/projects/{project}/environments/{env}',
  'DELETE /v1/projects/{project}/environments/{env}',
  'GET /v1/projects/{project}/members',
  'POST /v1/projects/{project}/members',
  'PATCH /v1/projects/{project}/members/{userId}',
  'DELETE /v1/projects/{project}/members/{userId}',
  'POST /v1/projects/{project}/services',
  'GET /v1/projects/{project}/services',
  'GET /v1/services/{id}',
  'PATCH /v1/services/{id}',
  'DELETE /v1/services/{id}',
  'GET /v1/services/{id}/env',
  'PUT /v1/services/{id}/env',
  'POST /v1/services/{id}/builds',
  'GET /v1/services/{id}/builds',
  'GET /v1/builds/{id}',
  'GET /v1/builds/{id}/logs',
  'GET /v1/services/{id}/releases',
  'GET /v1/releases/{id}',
  'POST /v1/services/{id}/deployments',
  'GET /v1/services/{id}/deployments',
  'GET /v1/deployments/{id}',
  'GET /v1/deployments/{id}/logs',
  'POST /v1/services/{id}/rollback',
  'GET /v1/services/{id}/status',
];

function operationsOf(doc: OpenApiDocument): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.has(method))
      .map(([method, operation]) => ({ ...operation, method: method.toUpperCase(), path })),
  );
}

/** An operation that says, in the document, that it takes no token. */
function isPublic(operation: Operation): boolean {
  return Array.isArray(operation.security) && operation.security.length === 0;
}

/** Fills path parameters with values that name nothing: ids are random uuids. */
function concretePath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_match, name: string) =>
    /id$/i.test(name) ? RANDOM_ID : 'no-such-thing',
  );
}

function requestFor(operation: Operation, headers: Record<string, string>): InjectOptions {
  const content = Object.keys(operation.requestBody?.content ?? {});
  const options: InjectOptions = {
    method: operation.method as InjectOptions['method'],
    url: concretePath(operation.path),
    headers,
  };
  if (content.includes('application/json')) return { ...options, payload: {} };
  if (content.length > 0)
    return {
      ...options,
      payload: '',
      headers: { ...headers, 'content-type': content[0] ?? 'text/plain' },
    };
  return options;
}

/**
 * Every route the app registered, read from Fastify's route tree: each line is a tree
 * branch whose label continues its parent's path, with its methods in parentheses.
 */
function registeredRoutes(t: TestApp): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of t.app.printRoutes().split('\n')) {
    const match = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack[depth] = match[2] ?? '';
    const path = stack.join('').replace(/:([A-Za-z]+)/g, '{$1}');
    for (const method of match[3]?.split(', ') ?? [])
      if (method !== 'HEAD') routes.push(`${method} ${path}`);
  }
  return routes;
}

for (const backend of testBackends()) {
  describe(`the API contract on ${backend}`, () => {
    let t: TestApp;
    let user: User;
    let doc: OpenApiDocument;
    let operations: Operation[];

    before(async () => {
      t = await createTestApp(backend, FAST_HASHING);
      user = await signUp(t.app);
      doc = t.app.swagger() as unknown as OpenApiDocument;
      operations = operationsOf(doc);
    });
    after(async () => t.close());

    it('serves an OpenAPI 3.1 document at /openapi.json that lists every /v1 route', async () => {
      const response = await t.app.inject({ url: '/openapi.json' });
      assert.equal(response.statusCode, 200);
      const served = response.json<OpenApiDocument>();
      assert.match(served.openapi, /^3\.1\./);
      assert.deepEqual(Object.keys(served.paths).sort(), Object.keys(doc.paths).sort());

      const documented = new Set(operations.map((op) => `${op.method} ${op.path}`));
      const registered = registeredRoutes(t).filter((route) =>
        route.split(' ')[1]?.startsWith('/v1/'),
      );
      assert.ok(
        registered.length >= CORE_ROUTES.length,
        `route tree not read: ${registered.join(', ')}`,
      );
      for (const route of registered)
        assert.ok(documented.has(route), `${route} is served but not documented`);
      for (const route of CORE_ROUTES)
        assert.ok(documented.has(route), `${route} is missing from the document`);
      for (const op of operations) {
        const url = op.path.replace(/\{([^}]+)\}/g, ':$1');
        assert.ok(
          t.app.hasRoute({ method: op.method as 'GET', url }),
          `${op.method} ${op.path} is documented but not served`,
        );
      }
    });

    it('declares sign-up and sign-in public, and lets them through without a token', async () => {
      const publicPaths = [
        '/v1/auth/register',
        '/v1/auth/verify',
        '/v1/auth/login',
        '/v1/auth/refresh',
      ];
      for (const path of publicPaths) {
        const operation = operations.find((op) => op.path === path && op.method === 'POST');
        assert.ok(
          operation !== undefined && isPublic(operation),
          `${path} should declare security: []`,
        );
        const response = await t.app.inject({ method: 'POST', url: path, payload: {} });
        assertError(response, 400, 'VALIDATION_FAILED', path);
      }
    });

    it('answers 401 AUTHENTICATION_REQUIRED without a token on every other route', async () => {
      const protectedOps = operations.filter((op) => !isPublic(op));
      assert.ok(protectedOps.length >= CORE_ROUTES.length - 3);
      for (const op of protectedOps) {
        const response = await t.app.inject(requestFor(op, {}));
        assertError(response, 401, 'AUTHENTICATION_REQUIRED', `${op.method} ${op.path}`);
        assert.match(String(response.headers['www-authenticate']), /^Bearer/);
      }
    });

    it('answers 401 AUTHENTICATION_FAILED to a garbage token on every protected route', async () => {
      const garbage = [
        'Bearer garbage',
        'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
        'Basic dXNlcjpwYXNz',
        'Bearer',
      ];
      for (const op of operations.filter((candidate) => !isPublic(candidate))) {
        for (const authorization of garbage) {
          const response = await t.app.inject(requestFor(op, { authorization }));
          assertError(
            response,
            401,
            'AUTHENTICATION_FAILED',
            `${op.method} ${op.path} with ${authorization}`,
          );
        }
      }
    });

    it('answers every route, given ids that name nothing, below 500 and in the error envelope', async () => {
      const walker = await signUp(t.app);
      // Reads first, writes next, deletes and the auth routes (which may end the session) last.
      const rank = (op: Operation) =>
        op.path.startsWith('/v1/auth/')
          ? 3
          : op.method === 'GET'
            ? 0
            : op.method === 'DELETE'
              ? 2
              : 1;
      for (const op of [...operations].sort((a, b) => rank(a) - rank(b))) {
        const response = await t.app.inject(requestFor(op, walker.headers));
        const label = `${op.method} ${op.path}`;
        assert.ok(response.statusCode < 500, `${label}: ${response.statusCode} ${response.body}`);
        if (response.statusCode >= 400) assertErrorEnvelope(response, label);
      }
    });

    it('echoes a client X-Request-Id and replaces a malformed one', async () => {
      const echoed = await t.app.inject({
        url: '/v1/projects/no-such-project',
        headers: { ...user.headers, 'x-request-id': 'client-req.42:a_b' },
      });
      assert.equal(echoed.headers['x-request-id'], 'client-req.42:a_b');
      assertError(echoed, 404, 'PROJECT_NOT_FOUND');

      const ok = await t.app.inject({
        url: '/v1/me',
        headers: { ...user.headers, 'x-request-id': 'trace-1' },
      });
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.headers['x-request-id'], 'trace-1');

      for (const bad of ['has spaces', 'x'.repeat(129), 'semi;colon']) {
        const replaced = await t.app.inject({
          url: '/v1/nowhere',
          headers: { 'x-request-id': bad },
        });
        assert.notEqual(replaced.headers['x-request-id'], bad);
        assert.match(String(replaced.headers['x-request-id']), /^[0-9a-f-]{36}$/);
        assertError(replaced, 404, 'NOT_FOUND');
      }
    });

    it('keeps the envelope for failures outside the routes: unknown route, bad path, bad media type', async () => {
      assertError(await t.app.inject({ url: '/v1/nowhere' }), 404, 'NOT_FOUND');
      assertError(
        await t.app.inject({ method: 'DELETE', url: '/healthz' }),
        405,
        'METHOD_NOT_ALLOWED',
      );
      const badPath = await t.app.inject({
        url: '/v1/projects/%E2%82',
        headers: { ...user.headers, 'x-request-id': 'bad-path-1' },
      });
      assertError(badPath, 400, 'VALIDATION_FAILED');
      assert.equal(badPath.headers['x-request-id'], 'bad-path-1');
      const longPath = await t.app.inject({
        url: `/v1/projects/${'a'.repeat(300)}/members`,
        headers: user.headers,
      });
      assertError(longPath, 400, 'VALIDATION_FAILED');
      const xml = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: { ...user.headers, 'content-type': 'application/xml' },
        payload: '<p/>',
      });
      assertError(xml, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('serves the browsable docs as HTML', async () => {
      const response = await t.app.inject({ url: '/docs' });
      const page =
        response.statusCode === 302
          ? await t.app.inject({ url: String(response.headers.location) })
          : response;
      assert.equal(page.statusCode, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(page.body, /<html/i);
    });

    it('answers /healthz and /readyz without a token', async () => {
      const health = await t.app.inject({ url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      const ready = await t.app.inject({ url: '/readyz' });
      assert.equal(ready.statusCode, 200, ready.body);
      const body = ready.json<{ status: string; checks: Record<string, { ok: boolean }> }>();
      assert.equal(body.status, 'ready');
      assert.equal(body.checks['database']?.ok, true);
    });

    it('serves Prometheus metrics with the HTTP request duration histogram', async () => {
      await t.app.inject({ url: '/v1/me', headers: user.headers });
      const response = await t.app.inject({ url: '/metrics' });
      assert.equal(response.statusCode, 200);
      assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.match(response.body, /^# TYPE switchyard_http_request_duration_seconds histogram$/m);
      assert.match(
        response.body,
        /^switchyard_http_request_duration_seconds_count\{[^}]*route="\/v1\/me"[^}]*\} [1-9]/m,
      );
    });

    it('publishes the key that verifies access tokens, with its kid, at /.well-known/jwks.json', async () => {
      const response = await t.app.inject({ url: '/.well-known/jwks.json' });
      assert.equal(response.statusCode, 200);
      const { keys } = response.json<{
        keys: Array<{ kid?: unknown; kty?: unknown; d?: unknown }>;
      }>();
      assert.ok(keys.length >= 1);
      for (const key of keys) {
        assert.equal(typeof key.kid, 'string');
        assert.equal(typeof key.kty, 'string');
        assert.equal(key.d, undefined, 'the private part must not be published');
      }
      const header = JSON.parse(
        Buffer.from(user.tokens.accessToken.split('.')[0] ?? '', 'base64url').toString('utf8'),
      ) as { kid?: string };
      assert.ok(
        keys.some((key) => key.kid === header.kid),
        'the access token names a published kid',
      );
    });
  });
}
