import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { createTestApp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';

// Routing does not depend on the database; one backend is enough.
const backend = testBackends().includes('postgres') ? 'postgres' : 'pglite';
const ID = '0193a1b2-0000-7000-8000-000000000001';

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

interface MethodCase {
  method: Method;
  url: string;
  /** The Allow header a 405 must carry; undefined: the path is unknown, 404. */
  allow?: string;
}

const CASES: MethodCase[] = [
  { method: 'DELETE', url: '/healthz', allow: 'GET, HEAD' },
  { method: 'POST', url: '/readyz', allow: 'GET, HEAD' },
  { method: 'GET', url: '/v1/auth/login', allow: 'POST' },
  { method: 'PUT', url: '/v1/projects', allow: 'GET, HEAD, POST' },
  { method: 'POST', url: '/v1/projects/acme', allow: 'DELETE, GET, HEAD, PATCH' },
  { method: 'PATCH', url: '/v1/projects/', allow: 'GET, HEAD, POST' },
  { method: 'POST', url: `/v1/services/${ID}`, allow: 'DELETE, GET, HEAD, PATCH' },
  { method: 'POST', url: `/v1/services/${ID}?fields=name`, allow: 'DELETE, GET, HEAD, PATCH' },
  { method: 'DELETE', url: `/v1/services/${ID}/env`, allow: 'GET, HEAD, PUT' },
  { method: 'GET', url: `/v1/services/${ID}/rollback`, allow: 'POST' },
  { method: 'PUT', url: `/v1/builds/${ID}/logs`, allow: 'GET, HEAD' },
  { method: 'GET', url: '/v1/nowhere' },
  { method: 'DELETE', url: '/v1/nowhere' },
  { method: 'GET', url: `/v1/services/${ID}/unknown` },
  { method: 'POST', url: `/v1/services/${ID}/env/import/more` },
  { method: 'GET', url: '/v2/projects' },
];

function assertEnvelope(response: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(response.statusCode, status, response.body);
  assert.match(String(response.headers['content-type']), /^application\/json/);
  const body = response.json<{ error: { code: string; message: string; requestId: string } }>();
  assert.equal(body.error.code, code);
  assert.equal(body.error.requestId, response.headers['x-request-id']);
  assert.equal(response.headers['x-content-type-options'], 'nosniff', 'security headers kept');
}

describe(`wrong methods and unknown paths on ${backend}`, () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp(backend);
  });
  after(async () => t.close());

  for (const { method, url, allow } of CASES) {
    const expected = allow === undefined ? '404 NOT_FOUND' : `405 with Allow: ${allow}`;
    it(`answers ${method} ${url} with ${expected}`, async () => {
      const response = await t.app.inject({ method, url });
      if (allow === undefined) {
        assertEnvelope(response, 404, 'NOT_FOUND');
        assert.equal(response.headers['allow'], undefined);
        return;
      }
      assertEnvelope(response, 405, 'METHOD_NOT_ALLOWED');
      assert.equal(response.headers['allow'], allow);
    });
  }

  it('answers HEAD like GET without a body: 200 for a probe, 401 for a secured route', async () => {
    const health = await t.app.inject({ method: 'HEAD', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assert.equal(health.body, '');
    const secured = await t.app.inject({ method: 'HEAD', url: '/v1/projects' });
    assert.equal(secured.statusCode, 401);
    assert.equal(secured.body, '');
    assert.equal(secured.headers['allow'], undefined);
  });

  it('refuses a CORS preflight with 405 when no origin is allowed (the default)', async () => {
    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/projects',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    assertEnvelope(preflight, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(preflight.headers['allow'], 'GET, HEAD, POST');
    for (const name of Object.keys(preflight.headers))
      assert.ok(!name.startsWith('access-control-'), `no CORS grant, got ${name}`);
    const unknown = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/nowhere',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
    });
    assertEnvelope(unknown, 404, 'NOT_FOUND');
  });
});

describe(`wrong methods with CORS open to one origin, on ${backend}`, () => {
  const origin = 'https://app.example.com';
  let t: TestApp;
  before(async () => {
    t = await createTestApp(backend, { SWITCHYARD_CORS_ORIGINS: origin });
  });
  after(async () => t.close());

  it('answers the preflight, lists OPTIONS in Allow, and keeps unknown paths 404', async () => {
    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/projects',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.statusCode, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], origin);

    const wrong = await t.app.inject({ method: 'PUT', url: '/v1/projects' });
    assertEnvelope(wrong, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(wrong.headers['allow'], 'GET, HEAD, OPTIONS, POST');
    // The preflight's catch-all route matches every path; it must not make one known.
    for (const method of ['GET', 'POST'] as const)
      assertEnvelope(await t.app.inject({ method, url: '/v1/nowhere' }), 404, 'NOT_FOUND');
  });
});
