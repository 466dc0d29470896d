import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import swagger from '@fastify/swagger';
import { markDeprecated } from './deprecation.js';

async function appWithGroups() {
  const app = Fastify();
  await app.register(swagger, {
    openapi: { openapi: '3.1.0', info: { title: 't', version: '1' } },
  });
  await app.register(
    async (old) => {
      markDeprecated(old, {
        since: new Date('2026-12-01T00:00:00Z'),
        sunset: new Date('2027-06-30T00:00:00Z'),
        successor: '/v2/widgets',
      });
      old.get('/widgets', async () => ({ ok: true }));
      old.get('/widgets/fail', async (_request, reply) => reply.status(404).send({ error: 'x' }));
    },
    { prefix: '/v1' },
  );
  await app.register(async (current) => current.get('/widgets', async () => ({ ok: true })), {
    prefix: '/v2',
  });
  await app.ready();
  return app;
}

describe('deprecated route groups', () => {
  it('answers with Deprecation, Sunset and a successor link on every route of the group', async () => {
    const app = await appWithGroups();
    for (const url of ['/v1/widgets', '/v1/widgets/fail']) {
      const response = await app.inject({ url });
      assert.equal(response.headers['deprecation'], '@1796083200');
      assert.equal(response.headers['sunset'], 'Wed, 30 Jun 2027 00:00:00 GMT');
      assert.equal(response.headers['link'], '</v2/widgets>; rel="successor-version"');
    }
    await app.close();
  });

  it('leaves other groups alone', async () => {
    const app = await appWithGroups();
    const response = await app.inject({ url: '/v2/widgets' });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['deprecation'], undefined);
    assert.equal(response.headers['sunset'], undefined);
    await app.close();
  });

  it('flags the group operations deprecated in the OpenAPI document', async () => {
    const app = await appWithGroups();
    const paths = app.swagger().paths ?? {};
    assert.equal(paths['/v1/widgets']?.get?.deprecated, true);
    assert.notEqual(paths['/v2/widgets']?.get?.deprecated, true);
    await app.close();
  });

  it('refuses a sunset before the deprecation starts', () => {
    const app = Fastify();
    assert.throws(() =>
      markDeprecated(app, { since: new Date('2027-01-01'), sunset: new Date('2026-01-01') }),
    );
  });
});
