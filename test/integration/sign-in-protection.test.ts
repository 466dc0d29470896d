import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accountKey } from '../../src/auth/sign-in-guard.js';
import { testBackends } from '../support/database.js';
import {
  createIdentityTestApp,
  login,
  newUser,
  PASSWORD,
  register,
  type IdentityTestApp,
} from '../support/identity.js';

const LOCKOUT = {
  SWITCHYARD_LOCKOUT_THRESHOLD: '3',
  SWITCHYARD_LOCKOUT_BASE_SECONDS: '30',
  SWITCHYARD_LOCKOUT_MAX_SECONDS: '600',
};

for (const backend of testBackends()) {
  describe(`sign-in protection on ${backend}`, () => {
    let t: IdentityTestApp;
    let admin: Awaited<ReturnType<typeof newUser>>;

    before(async () => {
      t = await createIdentityTestApp(backend, { env: LOCKOUT });
      admin = await newUser(t.app, 'admin');
    });
    after(async () => t.close());

    const attempt = (email: string, password: string, ip = '127.0.0.1') =>
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password },
        remoteAddress: ip,
      });

    it('answers an unknown email exactly like a wrong password', async () => {
      const user = await register(t.app);
      const wrong = await attempt(user.email, 'not the password at all');
      const unknown = await attempt(`nobody-${Date.now()}@example.com`, 'not the password at all');
      assert.equal(wrong.statusCode, 401);
      assert.equal(unknown.statusCode, wrong.statusCode);
      assert.deepEqual(
        { ...unknown.json().error, requestId: '' },
        { ...wrong.json().error, requestId: '' },
      );
    });

    it('spends one real password verify for an unknown email, as for a wrong password', async () => {
      // What the time is spent on, counted rather than timed: the hasher itself proves that a
      // verify without a stored hash costs one full verify at the policy's costs
      // (src/auth/password.test.ts).
      const user = await register(t.app);
      const hasher = t.deps.identity.hasher;
      const original = hasher.verify;
      const stored: Array<string | undefined> = [];
      hasher.verify = async (hash, password) => {
        stored.push(hash);
        return original.call(hasher, hash, password);
      };
      try {
        assert.equal((await attempt(user.email, 'wrong password 1', '10.9.1.1')).statusCode, 401);
        const ghost = `ghost-${Date.now()}@example.com`;
        assert.equal((await attempt(ghost, 'wrong password 2', '10.9.2.1')).statusCode, 401);
      } finally {
        hasher.verify = original;
      }
      assert.equal(stored.length, 2, 'one verify per attempt');
      assert.match(stored[0] ?? '', /^\$argon2id\$/, 'the known account: its own hash');
      assert.equal(stored[1], undefined, 'the unknown email: the hasher verifies a dummy hash');
    });

    it('locks an account for a growing interval after repeated failures, even for the right password', async () => {
      const user = await register(t.app);
      for (let failure = 0; failure < 3; failure++)
        assert.equal((await attempt(user.email, 'wrong')).statusCode, 401);
      const locked = await attempt(user.email, PASSWORD);
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.json().error.code, 'RATE_LIMITED');
      const first = Number(locked.headers['retry-after']);
      assert.ok(first > 0 && first <= 30, `Retry-After ${first}`);

      // The lock lapses (simulated by moving it into the past); the next failure locks longer.
      await t.deps.database.db
        .withTables<{ sign_in_failures: { account_key: string; locked_until: Date | null } }>()
        .updateTable('sign_in_failures')
        .set({ locked_until: new Date(Date.now() - 1000) })
        .where('account_key', '=', accountKey(user.email))
        .execute();
      assert.equal((await attempt(user.email, 'wrong again')).statusCode, 401);
      const second = Number((await attempt(user.email, PASSWORD)).headers['retry-after']);
      assert.ok(second > 30 && second <= 60, `Retry-After ${second}`);
      const event = t.logs.find((line) => line['securityEvent'] === 'sign_in.locked_out');
      assert.equal(event?.['level'], 40);
    });

    it('locks names without an account the same way, so a lock reveals nothing', async () => {
      const ghost = `ghost-lock-${Date.now()}@example.com`;
      for (let failure = 0; failure < 3; failure++)
        assert.equal((await attempt(ghost, 'wrong')).statusCode, 401);
      const locked = await attempt(ghost, 'wrong');
      assert.equal(locked.statusCode, 429);
      assert.ok(Number(locked.headers['retry-after']) > 0);
    });

    it("lets the owner recover: an instance admin's password reset lifts the lock", async () => {
      const user = await register(t.app);
      for (let failure = 0; failure < 4; failure++) await attempt(user.email, 'wrong');
      assert.equal((await attempt(user.email, PASSWORD)).statusCode, 429);
      const reset = await t.app.inject({
        method: 'PATCH',
        url: `/v1/admin/users/${user.id}`,
        headers: admin.headers,
        payload: { password: 'a reset passphrase' },
      });
      assert.equal(reset.statusCode, 200, reset.body);
      await login(t.app, user.email, 'a reset passphrase');
    });
  });

  describe(`rate limits on ${backend}`, () => {
    let t: IdentityTestApp;

    before(async () => {
      t = await createIdentityTestApp(backend, {
        env: {
          SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '5',
          SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '3',
          SWITCHYARD_LOCKOUT_THRESHOLD: '100',
        },
      });
    });
    after(async () => t.close());

    const post = (url: string, payload: Record<string, unknown>, ip: string) =>
      t.app.inject({ method: 'POST', url, payload, remoteAddress: ip });

    function assertLimited(response: Awaited<ReturnType<typeof post>>) {
      assert.equal(response.statusCode, 429, response.body);
      assert.equal(response.json().error.code, 'RATE_LIMITED');
      const retryAfter = Number(response.headers['retry-after']);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    }

    it('limits sign-in per account, across addresses', async () => {
      const email = `limited-${Date.now()}@example.com`;
      for (let n = 1; n <= 3; n++)
        assert.equal(
          (await post('/v1/auth/login', { email, password: 'wrong' }, `10.1.0.${n}`)).statusCode,
          401,
        );
      assertLimited(await post('/v1/auth/login', { email, password: 'wrong' }, '10.1.0.9'));
    });

    it('limits sign-in per address, across accounts', async () => {
      for (let n = 1; n <= 5; n++) {
        const response = await post(
          '/v1/auth/login',
          { email: `a${n}-${Date.now()}@example.com`, password: 'wrong' },
          '10.2.0.1',
        );
        assert.equal(response.statusCode, 401);
      }
      assertLimited(
        await post(
          '/v1/auth/login',
          { email: `a6-${Date.now()}@example.com`, password: 'wrong' },
          '10.2.0.1',
        ),
      );
      const elsewhere = await post(
        '/v1/auth/login',
        { email: `a7-${Date.now()}@example.com`, password: 'wrong' },
        '10.2.0.2',
      );
      assert.equal(elsewhere.statusCode, 401, 'another address has its own budget');
    });

    it('limits refresh per address', async () => {
      for (let n = 1; n <= 5; n++) {
        assert.equal(
          (await post('/v1/auth/refresh', { refreshToken: `syr_guess${n}` }, '10.3.0.1'))
            .statusCode,
          401,
        );
      }
      assertLimited(await post('/v1/auth/refresh', { refreshToken: 'syr_guess6' }, '10.3.0.1'));
    });

    it('limits refresh per account', async () => {
      const user = await register(t.app);
      let { refreshToken } = await login(t.app, user.email);
      for (let n = 1; n <= 3; n++) {
        const response = await post('/v1/auth/refresh', { refreshToken }, `10.4.0.${n}`);
        assert.equal(response.statusCode, 200, response.body);
        refreshToken = response.json<{ refreshToken: string }>().refreshToken;
      }
      assertLimited(await post('/v1/auth/refresh', { refreshToken }, '10.4.0.9'));
    });

    it('limits registration per address', async () => {
      for (let n = 1; n <= 5; n++) {
        const response = await post(
          '/v1/auth/register',
          { email: `r${n}-${Date.now()}@example.com`, password: PASSWORD, name: 'R' },
          '10.5.0.1',
        );
        assert.equal(response.statusCode, 202, response.body);
      }
      assertLimited(
        await post(
          '/v1/auth/register',
          { email: `r6-${Date.now()}@example.com`, password: PASSWORD, name: 'R' },
          '10.5.0.1',
        ),
      );
    });
  });
}
