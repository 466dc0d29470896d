import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { testBackends } from '../support/database.js';
import { createIdentityTestApp, newUser, type IdentityTestApp } from '../support/identity.js';

const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

interface CreatedToken {
  id: string;
  token: string;
  prefix: string;
  scopes: string[];
  projectId: string | null;
  lastUsedAt: string | null;
}

for (const backend of testBackends()) {
  describe(`API tokens on ${backend}`, () => {
    let t: IdentityTestApp;
    let admin: Awaited<ReturnType<typeof newUser>>;
    let owner: Awaited<ReturnType<typeof newUser>>;
    const projectA = `tokens-a-${Date.now()}`;
    const projectB = `tokens-b-${Date.now()}`;

    before(async () => {
      t = await createIdentityTestApp(backend);
      admin = await newUser(t.app, 'admin');
      owner = await newUser(t.app, 'owner');
      for (const slug of [projectA, projectB]) {
        const created = await t.app.inject({
          method: 'POST',
          url: '/v1/projects',
          headers: owner.headers,
          payload: { name: slug, slug },
        });
        assert.equal(created.statusCode, 201, created.body);
      }
    });
    after(async () => t.close());

    async function createToken(
      body: Record<string, unknown>,
      headers = owner.headers,
    ): Promise<CreatedToken> {
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/me/tokens',
        headers,
        payload: { name: 'ci', expiresAt: inDays(30), ...body },
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<CreatedToken>();
    }
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

    it('shows the secret once, stores only its hash, and lists the token without it', async () => {
      const created = await createToken({ scopes: ['read'] });
      assert.match(created.token, /^syt_[A-Za-z0-9_-]{43}$/);
      assert.ok(created.token.startsWith(created.prefix));
      const listed = await t.app.inject({ url: '/v1/me/tokens', headers: owner.headers });
      const row = listed
        .json<{ data: Array<Record<string, unknown>> }>()
        .data.find((item) => item['id'] === created.id);
      assert.ok(row);
      assert.equal(row['token'], undefined);
      assert.ok(!listed.body.includes(created.token));
      const stored = await t.deps.database.db
        .withTables<{ api_tokens: { id: string; token_hash: string } }>()
        .selectFrom('api_tokens')
        .select('token_hash')
        .where('id', '=', created.id)
        .executeTakeFirstOrThrow();
      assert.equal(stored.token_hash, createHash('sha256').update(created.token).digest('hex'));
    });

    it('works as a bearer wherever an access token does, and records when it was last used', async () => {
      const created = await createToken({ scopes: ['read'] });
      assert.equal(created.lastUsedAt, null);
      const read = await t.app.inject({
        url: `/v1/projects/${projectA}`,
        headers: bearer(created.token),
      });
      assert.equal(read.statusCode, 200, read.body);
      assert.equal(
        (await t.app.inject({ url: '/v1/me', headers: bearer(created.token) })).json().id,
        owner.id,
      );
      const listed = await t.app.inject({ url: '/v1/me/tokens', headers: owner.headers });
      const row = listed
        .json<{ data: CreatedToken[] }>()
        .data.find((item) => item.id === created.id);
      assert.ok(row?.lastUsedAt !== null && row?.lastUsedAt !== undefined);
    });

    it('is limited to its scopes', async () => {
      const reader = await createToken({ scopes: ['read'] });
      const denied = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${projectA}/environments`,
        headers: bearer(reader.token),
        payload: { name: 'qa' },
      });
      assert.equal(denied.statusCode, 403);
      assert.equal(denied.json().error.details.requiredScope, 'write');
      assert.equal(
        (
          await t.app.inject({
            method: 'POST',
            url: '/v1/projects',
            headers: bearer(reader.token),
            payload: { name: 'No' },
          })
        ).statusCode,
        403,
      );

      const writer = await createToken({ scopes: ['write'] });
      const allowed = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${projectA}/environments`,
        headers: bearer(writer.token),
        payload: { name: 'qa' },
      });
      assert.equal(allowed.statusCode, 201, allowed.body);
      assert.equal(
        (await t.app.inject({ url: `/v1/projects/${projectA}`, headers: bearer(writer.token) }))
          .statusCode,
        403,
        'write does not include read',
      );
      const deleting = await t.app.inject({
        method: 'DELETE',
        url: `/v1/projects/${projectB}`,
        headers: bearer(writer.token),
      });
      assert.equal(deleting.statusCode, 403, 'deleting a project needs admin');
    });

    it("never exceeds its owner's role", async () => {
      const member = await newUser(t.app);
      await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${projectA}/members`,
        headers: owner.headers,
        payload: { email: member.email, role: 'readonly' },
      });
      const everything = await createToken(
        { scopes: ['read', 'deploy', 'write', 'secrets', 'admin'] },
        member.headers,
      );
      const denied = await t.app.inject({
        method: 'DELETE',
        url: `/v1/projects/${projectA}`,
        headers: bearer(everything.token),
      });
      assert.equal(denied.statusCode, 403);
      assert.equal(
        (await t.app.inject({ url: `/v1/projects/${projectA}`, headers: bearer(everything.token) }))
          .statusCode,
        200,
      );
    });

    it('restricted to a project, sees no other project: not even that it exists', async () => {
      const restricted = await createToken({ scopes: ['read'], project: projectA });
      assert.ok(restricted.projectId !== null);
      assert.equal(
        (await t.app.inject({ url: `/v1/projects/${projectA}`, headers: bearer(restricted.token) }))
          .statusCode,
        200,
      );
      const other = await t.app.inject({
        url: `/v1/projects/${projectB}`,
        headers: bearer(restricted.token),
      });
      assert.equal(other.statusCode, 404);
      assert.equal(other.json().error.code, 'PROJECT_NOT_FOUND');
      const listed = await t.app.inject({ url: '/v1/projects', headers: bearer(restricted.token) });
      assert.deepEqual(
        listed.json<{ data: Array<{ slug: string }> }>().data.map((p) => p.slug),
        [projectA],
      );
      const stranger = await newUser(t.app);
      const foreign = await t.app.inject({
        method: 'POST',
        url: '/v1/me/tokens',
        headers: stranger.headers,
        payload: { name: 'x', scopes: ['read'], project: projectA, expiresAt: inDays(1) },
      });
      assert.equal(
        foreign.statusCode,
        404,
        'a token cannot be restricted to a project the user cannot see',
      );
    });

    it('must expire, and not too far away', async () => {
      const base = { name: 'x', scopes: ['read'] };
      const missing = await t.app.inject({
        method: 'POST',
        url: '/v1/me/tokens',
        headers: owner.headers,
        payload: base,
      });
      assert.equal(missing.statusCode, 400);
      for (const expiresAt of [new Date(Date.now() - 1000).toISOString(), inDays(400)]) {
        const response = await t.app.inject({
          method: 'POST',
          url: '/v1/me/tokens',
          headers: owner.headers,
          payload: { ...base, expiresAt },
        });
        assert.equal(response.statusCode, 400, expiresAt);
        assert.equal(response.json().error.code, 'VALIDATION_FAILED');
      }
    });

    it('stops working once revoked, expired, or its owner is disabled', async () => {
      const revoked = await createToken({ scopes: ['read'] });
      const deleted = await t.app.inject({
        method: 'DELETE',
        url: `/v1/me/tokens/${revoked.id}`,
        headers: owner.headers,
      });
      assert.equal(deleted.statusCode, 204);
      assert.equal(
        (await t.app.inject({ url: '/v1/me', headers: bearer(revoked.token) })).statusCode,
        401,
      );
      assert.equal(
        (
          await t.app.inject({
            method: 'DELETE',
            url: `/v1/me/tokens/${revoked.id}`,
            headers: owner.headers,
          })
        ).json().error.code,
        'API_TOKEN_NOT_FOUND',
      );

      const expiring = await createToken({ scopes: ['read'] });
      await t.deps.database.db
        .withTables<{ api_tokens: { id: string; expires_at: Date; created_at: Date } }>()
        .updateTable('api_tokens')
        .set({
          created_at: new Date(Date.now() - 120_000),
          expires_at: new Date(Date.now() - 60_000),
        })
        .where('id', '=', expiring.id)
        .execute();
      assert.equal(
        (await t.app.inject({ url: '/v1/me', headers: bearer(expiring.token) })).statusCode,
        401,
      );

      const user = await newUser(t.app);
      const theirs = await createToken({ scopes: ['read'] }, user.headers);
      await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${user.id}`,
        headers: admin.headers,
        payload: { disabled: true },
      });
      assert.equal(
        (await t.app.inject({ url: '/v1/me', headers: bearer(theirs.token) })).statusCode,
        401,
      );
      assert.equal(
        (await t.app.inject({ url: '/v1/me', headers: bearer('syt_not-a-real-token') })).statusCode,
        401,
      );
    });

    it('cannot manage sessions, passwords or other tokens', async () => {
      const created = await createToken({ scopes: ['read', 'write', 'admin'] });
      for (const [method, url, payload] of [
        ['POST', '/v1/me/tokens', { name: 'y', scopes: ['read'], expiresAt: inDays(1) }],
        ['GET', '/v1/me/tokens', undefined],
        ['GET', '/v1/me/sessions', undefined],
        [
          'POST',
          '/v1/me/password',
          { currentPassword: 'whatever at all', newPassword: 'another long one' },
        ],
        ['POST', '/v1/auth/logout', undefined],
      ] as const) {
        const response = await t.app.inject({
          method,
          url,
          headers: bearer(created.token),
          ...(payload === undefined ? {} : { payload }),
        });
        assert.equal(response.statusCode, 403, `${method} ${url}: ${response.body}`);
      }
    });
  });
}
