import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';

for (const backend of testBackends()) {
  describe(`projects, services and variables on ${backend}`, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp(backend);
    });
    after(async () => t.close());

    it('creates a project with its three standard environments, creator as owner', async () => {
      const owner = await signUp(t.app);
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Shop Front' },
      });
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(created.json().slug, 'shop-front');
      const envs = await t.app.inject({
        url: '/v1/projects/shop-front/environments',
        headers: owner.headers,
      });
      assert.deepEqual(
        envs
          .json()
          .data.map((e: { name: string }) => e.name)
          .sort(),
        ['development', 'production', 'staging'],
      );
      const members = await t.app.inject({
        url: '/v1/projects/shop-front/members',
        headers: owner.headers,
      });
      assert.equal(members.json().data[0].role, 'owner');
    });

    it('answers 404 PROJECT_NOT_FOUND to a non-member, exactly as for a missing project', async () => {
      const owner = await signUp(t.app);
      const stranger = await signUp(t.app);
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Secret', slug: `secret-${Date.now()}` },
      });
      const foreign = await t.app.inject({
        url: `/v1/projects/${created.json().id}`,
        headers: stranger.headers,
      });
      const missing = await t.app.inject({
        url: '/v1/projects/00000000-0000-4000-8000-000000000000',
        headers: stranger.headers,
      });
      assert.equal(foreign.statusCode, 404);
      assert.equal(foreign.json().error.code, 'PROJECT_NOT_FOUND');
      assert.equal(missing.json().error.code, foreign.json().error.code);
      assert.equal(missing.json().error.message, foreign.json().error.message);
    });

    it('stores configuration variables byte-exact', async () => {
      const owner = await signUp(t.app);
      const slug = `vars-${Date.now()}`;
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Vars', slug },
      });
      const service = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/services`,
        headers: owner.headers,
        payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
      });
      assert.equal(service.statusCode, 201, service.body);
      const pem =
        '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n';
      const variables = {
        DOLLAR: 'a$HOME$(x)`y`',
        QUOTES: `'single' "double"`,
        HASH: 'a # b',
        EQ: 'k=v=w',
        SPACE: '  padded  ',
        UNI: 'héllo 🌍',
        PEM: pem,
      };
      const put = await t.app.inject({
        method: 'PUT',
        url: `/v1/services/${service.json().id}/env`,
        headers: owner.headers,
        payload: { variables },
      });
      assert.equal(put.statusCode, 200, put.body);
      const got = await t.app.inject({
        url: `/v1/services/${service.json().id}/env`,
        headers: owner.headers,
      });
      assert.deepEqual(got.json().variables, variables);
    });
  });
}
