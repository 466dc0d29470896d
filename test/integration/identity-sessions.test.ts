import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testBackends } from '../support/database.js';
import {
  createIdentityTestApp,
  login,
  newUser,
  PASSWORD,
  register,
  type IdentityTestApp,
} from '../support/identity.js';

for (const backend of testBackends()) {
  describe(`sessions and revocation on ${backend}`, () => {
    let t: IdentityTestApp;
    let admin: Awaited<ReturnType<typeof newUser>>;

    before(async () => {
      t = await createIdentityTestApp(backend);
      admin = await newUser(t.app, 'admin'); // the first account: instance admin
    });
    after(async () => t.close());

    const me = (headers: Record<string, string>) => t.app.inject({ url: '/v1/me', headers });
    const refresh = (refreshToken: string) =>
      t.app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } });

    it('rotates refresh tokens; reusing a spent one revokes the whole session and is a security event', async () => {
      const user = await newUser(t.app);
      const rotated = await refresh(user.refreshToken);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal(rotated.headers['cache-control'], 'no-store');
      const next = rotated.json<{ accessToken: string; refreshToken: string }>();
      assert.notEqual(next.refreshToken, user.refreshToken);

      const reuse = await refresh(user.refreshToken);
      assert.equal(reuse.statusCode, 401);
      assert.equal(reuse.json().error.code, 'AUTHENTICATION_FAILED');
      assert.equal(
        (await refresh(next.refreshToken)).statusCode,
        401,
        'the successor is revoked too',
      );
      assert.equal(
        (await me({ authorization: `Bearer ${next.accessToken}` })).statusCode,
        401,
        'and its access tokens',
      );
      assert.equal((await me(user.headers)).statusCode, 401);

      const event = t.logs.find(
        (line) => line['securityEvent'] === 'refresh_token.reused' && line['userId'] === user.id,
      );
      assert.ok(event, 'a security event was logged');
      assert.equal(event['level'], 40, 'at warn');
      assert.equal(typeof event['sessionId'], 'string');
      assert.equal(event['clientIp'], '127.0.0.1');
      assert.ok(!JSON.stringify(event).includes(user.refreshToken), 'no token in the log');
    });

    it('logs out: the access token and the refresh token stop working at once', async () => {
      const user = await newUser(t.app);
      const logout = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/logout',
        headers: user.headers,
      });
      assert.equal(logout.statusCode, 204);
      assert.equal((await me(user.headers)).statusCode, 401);
      assert.equal((await refresh(user.refreshToken)).statusCode, 401);
    });

    it("lists the caller's sessions and revokes any of them; other ids are not found", async () => {
      const user = await register(t.app);
      const laptop = await login(t.app, user.email);
      const phone = await login(t.app, user.email);
      const listed = await t.app.inject({ url: '/v1/me/sessions', headers: laptop.headers });
      assert.equal(listed.statusCode, 200, listed.body);
      const sessions = listed.json<{
        data: Array<{ id: string; isCurrent: boolean; method: string }>;
      }>().data;
      assert.equal(sessions.length, 2);
      assert.equal(sessions.filter((session) => session.isCurrent).length, 1);
      const phoneSession = sessions.find((session) => !session.isCurrent);
      assert.ok(phoneSession);

      const revoked = await t.app.inject({
        method: 'DELETE',
        url: `/v1/me/sessions/${phoneSession.id}`,
        headers: laptop.headers,
      });
      assert.equal(revoked.statusCode, 204);
      assert.equal((await me(phone.headers)).statusCode, 401);
      assert.equal((await refresh(phone.refreshToken)).statusCode, 401);
      assert.equal((await me(laptop.headers)).statusCode, 200);

      const again = await t.app.inject({
        method: 'DELETE',
        url: `/v1/me/sessions/${phoneSession.id}`,
        headers: laptop.headers,
      });
      assert.equal(again.json().error.code, 'SESSION_NOT_FOUND');
      const foreign = await t.app.inject({
        method: 'GET',
        url: '/v1/me/sessions',
        headers: admin.headers,
      });
      const adminSession = foreign.json<{ data: Array<{ id: string }> }>().data[0];
      const stranger = await t.app.inject({
        method: 'DELETE',
        url: `/v1/me/sessions/${adminSession?.id}`,
        headers: laptop.headers,
      });
      assert.equal(stranger.statusCode, 404);
      assert.equal((await me(admin.headers)).statusCode, 200);
    });

    it('changing the password signs out every other session and keeps this one', async () => {
      const user = await register(t.app);
      const here = await login(t.app, user.email);
      const elsewhere = await login(t.app, user.email);
      const wrong = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: here.headers,
        payload: { currentPassword: 'not the password', newPassword: 'a brand new passphrase' },
      });
      assert.equal(wrong.statusCode, 401);
      const changed = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: here.headers,
        payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' },
      });
      assert.equal(changed.statusCode, 204, changed.body);
      assert.equal((await me(elsewhere.headers)).statusCode, 401);
      assert.equal((await refresh(elsewhere.refreshToken)).statusCode, 401);
      assert.equal((await me(here.headers)).statusCode, 200);
      await assert.rejects(login(t.app, user.email), /401/);
      await login(t.app, user.email, 'a brand new passphrase');
    });

    it('disabling a user revokes their access at once; enabling lets them sign in again', async () => {
      const user = await newUser(t.app);
      const before = await t.app.inject({ url: '/v1/projects', headers: user.headers });
      assert.equal(before.statusCode, 200);
      const disabled = await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${user.id}`,
        headers: admin.headers,
        payload: { disabled: true },
      });
      assert.equal(disabled.statusCode, 200, disabled.body);
      assert.equal(disabled.json().disabled, true);
      assert.equal(
        (await t.app.inject({ url: '/v1/projects', headers: user.headers })).statusCode,
        401,
      );
      assert.equal((await refresh(user.refreshToken)).statusCode, 401);
      const refused = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: user.email, password: PASSWORD },
      });
      assert.equal(refused.statusCode, 401);
      assert.equal(refused.json().error.message, 'The email or password is incorrect');

      await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${user.id}`,
        headers: admin.headers,
        payload: { disabled: false },
      });
      const again = await login(t.app, user.email);
      assert.equal((await me(again.headers)).statusCode, 200);
    });

    it('only instance admins manage users, and the last active admin cannot be disabled', async () => {
      const user = await newUser(t.app);
      const forbidden = await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${admin.id}`,
        headers: user.headers,
        payload: { disabled: true },
      });
      assert.equal(forbidden.statusCode, 403);
      assert.equal(
        (await t.app.inject({ url: '/v1/admin/users', headers: user.headers })).statusCode,
        403,
      );
      const self = await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${admin.id}`,
        headers: admin.headers,
        payload: { disabled: true },
      });
      assert.equal(self.statusCode, 409);
      assert.equal(self.json().error.code, 'USER_LAST_ADMIN');
      const listed = await t.app.inject({
        url: '/v1/admin/users?limit=100',
        headers: admin.headers,
      });
      assert.ok(
        listed.json<{ data: Array<{ id: string }> }>().data.some((row) => row.id === user.id),
      );
    });

    it('removing a member takes their access to the project away at once', async () => {
      const owner = await newUser(t.app);
      const member = await newUser(t.app);
      const slug = `revoke-${Date.now()}`;
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Revoke', slug },
      });
      const added = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/members`,
        headers: owner.headers,
        payload: { email: member.email, role: 'developer' },
      });
      assert.equal(added.statusCode, 201, added.body);
      assert.equal(
        (await t.app.inject({ url: `/v1/projects/${slug}`, headers: member.headers })).statusCode,
        200,
      );
      const removed = await t.app.inject({
        method: 'DELETE',
        url: `/v1/projects/${slug}/members/${member.id}`,
        headers: owner.headers,
      });
      assert.equal(removed.statusCode, 204);
      const after = await t.app.inject({ url: `/v1/projects/${slug}`, headers: member.headers });
      assert.equal(after.statusCode, 404);
      assert.equal(after.json().error.code, 'PROJECT_NOT_FOUND');
      const changeLog = t.logs.filter(
        (line) => line['securityEvent'] === 'member.changed' && line['memberId'] === member.id,
      );
      assert.deepEqual(
        changeLog.map((line) => line['change']),
        ['added', 'removed'],
      );
    });
  });
}

for (const backend of testBackends()) {
  describe(`members and Redis outages on ${backend}`, () => {
    let t: IdentityTestApp;

    before(async () => {
      // Nothing listens on port 1: every Redis command fails.
      t = await createIdentityTestApp(backend, { env: { REDIS_URL: 'redis://127.0.0.1:1' } });
      await newUser(t.app, 'admin');
    });
    after(async () => t.close());

    it('keeps the last owner: neither removed nor demoted', async () => {
      const owner = await newUser(t.app);
      const slug = `last-owner-${Date.now()}`;
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Last', slug },
      });
      const demote = await t.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${slug}/members/${owner.id}`,
        headers: owner.headers,
        payload: { role: 'admin' },
      });
      assert.equal(demote.statusCode, 409);
      assert.equal(demote.json().error.code, 'MEMBER_LAST_OWNER');
      const remove = await t.app.inject({
        method: 'DELETE',
        url: `/v1/projects/${slug}/members/${owner.id}`,
        headers: owner.headers,
      });
      assert.equal(remove.json().error.code, 'MEMBER_LAST_OWNER');
    });

    it('signs in, refreshes and revokes with Redis down: warnings in the log, no error to the client', async () => {
      const user = await newUser(t.app);
      const refreshed = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/refresh',
        payload: { refreshToken: user.refreshToken },
      });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      const headers = {
        authorization: `Bearer ${refreshed.json<{ accessToken: string }>().accessToken}`,
      };
      assert.equal(
        (await t.app.inject({ method: 'POST', url: '/v1/auth/logout', headers })).statusCode,
        204,
      );
      assert.equal((await t.app.inject({ url: '/v1/me', headers })).statusCode, 401);
      const warnings = t.logs.filter((line) => line['msg'] === 'redis unavailable; falling back');
      assert.ok(
        warnings.some((line) => line['component'] === 'rate_limit'),
        'rate limits fell back',
      );
      assert.ok(
        warnings.some((line) => line['component'] === 'deny_list'),
        'the deny list fell back',
      );
      assert.ok(warnings.every((line) => line['level'] === 40));
    });
  });
}
