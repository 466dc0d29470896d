import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { testBackends } from '../support/database.js';
import {
  createIdentityTestApp,
  newUser,
  PASSWORD,
  register,
  type IdentityTestApp,
} from '../support/identity.js';

type Injected = Awaited<ReturnType<IdentityTestApp['app']['inject']>>;

function cookieOf(response: Injected, name: string) {
  return response.cookies.find((cookie) => cookie.name === name);
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

for (const backend of testBackends()) {
  describe(`browser sessions on ${backend}`, () => {
    let t: IdentityTestApp;

    before(async () => {
      t = await createIdentityTestApp(backend);
      await newUser(t.app, 'admin');
    });
    after(async () => t.close());

    async function signInWithCookies() {
      const user = await register(t.app);
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/session',
        payload: { email: user.email, password: PASSWORD },
      });
      assert.equal(response.statusCode, 200, response.body);
      const access = cookieOf(response, 'sy_access');
      const refresh = cookieOf(response, 'sy_refresh');
      assert.ok(access && refresh);
      return {
        user,
        response,
        csrfToken: response.json<{ csrfToken: string }>().csrfToken,
        access: access.value,
        refresh: refresh.value,
      };
    }

    it('sets HttpOnly SameSite cookies, not Secure over plain http, and answers the CSRF token', async () => {
      const { response, csrfToken } = await signInWithCookies();
      const access = cookieOf(response, 'sy_access');
      const refresh = cookieOf(response, 'sy_refresh');
      const csrf = cookieOf(response, 'sy_csrf');
      assert.equal(access?.httpOnly, true);
      assert.equal(access?.sameSite, 'Lax');
      assert.equal(access?.path, '/');
      assert.equal(access?.secure, undefined);
      assert.equal(refresh?.httpOnly, true);
      assert.equal(refresh?.sameSite, 'Strict');
      assert.equal(refresh?.path, '/v1/auth/session');
      assert.equal(csrf?.httpOnly, undefined, 'the page reads the CSRF cookie');
      assert.equal(csrf?.value, csrfToken);
      assert.equal(response.headers['cache-control'], 'no-store');
      assert.ok(
        !response.body.includes(access?.value ?? '-'),
        'the access token is not in the body',
      );
    });

    it('reads with the cookie alone; refuses a state change without the CSRF token', async () => {
      const { access, csrfToken } = await signInWithCookies();
      const cookies = { sy_access: access };
      assert.equal((await t.app.inject({ url: '/v1/me', cookies })).statusCode, 200);
      const payload = { name: 'Cookie project', slug: `cookie-${Date.now()}` };

      const missing = await t.app.inject({ method: 'POST', url: '/v1/projects', cookies, payload });
      assert.equal(missing.statusCode, 403);
      assert.equal(missing.json().error.code, 'CSRF_TOKEN_INVALID');
      const wrong = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        cookies,
        payload,
        headers: { 'x-csrf-token': `${csrfToken}x` },
      });
      assert.equal(wrong.statusCode, 403);
      const good = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        cookies,
        payload,
        headers: { 'x-csrf-token': csrfToken },
      });
      assert.equal(good.statusCode, 201, good.body);
      assert.ok(
        t.logs.some((line) => line['securityEvent'] === 'csrf.rejected' && line['level'] === 40),
      );
    });

    it('leaves bearer clients alone: no CSRF token needed, whatever cookies ride along', async () => {
      const user = await newUser(t.app);
      const { access } = await signInWithCookies();
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: user.headers,
        cookies: { sy_access: access },
        payload: { name: 'Bearer project', slug: `bearer-${Date.now()}` },
      });
      assert.equal(response.statusCode, 201, response.body);
    });

    it("refuses a bearer session's token put in the cookie for a state change (it has no CSRF binding)", async () => {
      const user = await newUser(t.app);
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        cookies: { sy_access: user.accessToken },
        headers: { 'x-csrf-token': 'anything' },
        payload: { name: 'Nope' },
      });
      assert.equal(response.statusCode, 403);
    });

    it('refreshes through the cookie with the CSRF token; a reused refresh cookie revokes the session', async () => {
      const { refresh, csrfToken } = await signInWithCookies();
      const url = '/v1/auth/session/refresh';
      const noHeader = await t.app.inject({
        method: 'POST',
        url,
        cookies: { sy_refresh: refresh },
      });
      assert.equal(noHeader.statusCode, 403);
      const rotated = await t.app.inject({
        method: 'POST',
        url,
        cookies: { sy_refresh: refresh },
        headers: { 'x-csrf-token': csrfToken },
      });
      assert.equal(rotated.statusCode, 200, rotated.body);
      const next = cookieOf(rotated, 'sy_access')?.value ?? '';
      assert.equal(
        (await t.app.inject({ url: '/v1/me', cookies: { sy_access: next } })).statusCode,
        200,
      );
      assert.equal(rotated.json().csrfToken, csrfToken, 'the CSRF token stays for the session');

      const reused = await t.app.inject({
        method: 'POST',
        url,
        cookies: { sy_refresh: refresh },
        headers: { 'x-csrf-token': csrfToken },
      });
      assert.equal(reused.statusCode, 401);
      assert.equal(
        (await t.app.inject({ url: '/v1/me', cookies: { sy_access: next } })).statusCode,
        401,
      );
      const bearerRefresh = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/refresh',
        payload: { refreshToken: refresh },
      });
      assert.equal(bearerRefresh.statusCode, 401);
    });

    it('logs out a cookie session: cookies cleared, the old cookie refused', async () => {
      const { access, csrfToken } = await signInWithCookies();
      const logout = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/logout',
        cookies: { sy_access: access },
        headers: { 'x-csrf-token': csrfToken },
      });
      assert.equal(logout.statusCode, 204);
      for (const name of ['sy_access', 'sy_refresh', 'sy_csrf']) {
        const cleared = cookieOf(logout, name);
        assert.ok(cleared !== undefined && cleared.value === '', `${name} cleared`);
      }
      assert.equal(
        (await t.app.inject({ url: '/v1/me', cookies: { sy_access: access } })).statusCode,
        401,
      );
    });

    it('puts the security headers on every kind of answer', async () => {
      const user = await newUser(t.app);
      const responses = [
        await t.app.inject({ url: '/healthz' }),
        await t.app.inject({ url: '/v1/me', headers: user.headers }),
        await t.app.inject({
          method: 'POST',
          url: '/v1/projects',
          headers: user.headers,
          payload: { name: 'Headers', slug: `headers-${Date.now()}` },
        }),
        await t.app.inject({
          method: 'POST',
          url: '/v1/auth/logout',
          headers: (await newUser(t.app)).headers,
        }),
        await t.app.inject({
          method: 'POST',
          url: '/v1/projects',
          headers: user.headers,
          payload: { name: 'x', extra: 1 },
        }),
        await t.app.inject({ url: '/v1/me' }),
        await t.app.inject({ url: '/v1/projects/nope', headers: user.headers }),
        await t.app.inject({ url: '/v1/no-such-route' }),
        await t.app.inject({
          method: 'POST',
          url: '/v1/auth/login',
          payload: '{not json',
          headers: { 'content-type': 'application/json' },
        }),
        await t.app.inject({ url: '/docs' }),
        await t.app.inject({ url: '/openapi.json' }),
        await t.app.inject({ url: '/metrics' }),
      ];
      assert.deepEqual(
        responses.map((r) => r.statusCode),
        [200, 200, 201, 204, 400, 401, 404, 404, 400, 200, 200, 200],
      );
      for (const response of responses) {
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
          assert.equal(response.headers[name], value, `${name} on a ${response.statusCode} answer`);
        }
        const csp = response.headers['content-security-policy'];
        if (response.headers['content-type']?.toString().startsWith('application/json')) {
          assert.match(String(csp), /default-src 'none'; frame-ancestors 'none'/);
        }
      }
    });

    it('keeps CORS closed by default', async () => {
      const preflight = await t.app.inject({
        method: 'OPTIONS',
        url: '/v1/projects',
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.headers['access-control-allow-origin'], undefined);
      const read = await t.app.inject({
        url: '/healthz',
        headers: { origin: 'https://app.example.com' },
      });
      assert.equal(read.headers['access-control-allow-origin'], undefined);
    });
  });
}

describe('CORS allow list and Secure cookies over TLS', () => {
  let t: IdentityTestApp;
  let dir: string;
  let server: Server | undefined;
  const backend = testBackends()[0] ?? 'pglite';

  before(async () => {
    t = await createIdentityTestApp(backend, {
      env: { SWITCHYARD_CORS_ORIGINS: 'https://app.example.com' },
    });
    await newUser(t.app, 'admin');
    dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-'));
  });
  after(async () => {
    server?.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers allowed origins only, with credentials and the CSRF header allowed', async () => {
    const preflight = (origin: string) =>
      t.app.inject({
        method: 'OPTIONS',
        url: '/v1/projects',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-csrf-token',
        },
      });
    const allowed = await preflight('https://app.example.com');
    assert.equal(allowed.statusCode, 204);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
    assert.match(String(allowed.headers['access-control-allow-headers']), /x-csrf-token/);
    const refused = await preflight('https://evil.example.com');
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
  });

  it('marks session cookies Secure when the request came over TLS', async () => {
    // A self-signed certificate for 127.0.0.1; the app itself is unchanged, only the socket is TLS.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const tls = createHttpsServer(
      { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      (req, res) => {
        t.app.server.emit('request', req, res);
      },
    );
    server = tls;
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const { port } = tls.address() as AddressInfo;
    const user = await register(t.app);
    const response = await fetchInsecure(`https://127.0.0.1:${port}/v1/auth/session`, {
      email: user.email,
      password: PASSWORD,
    });
    assert.equal(response.status, 200);
    const cookies = response.headers.getSetCookie();
    assert.equal(cookies.length, 3);
    for (const cookie of cookies) assert.match(cookie, /; Secure/, cookie);
  });
});

/** POSTs JSON over TLS to the self-signed test server (verification off for this one call). */
async function fetchInsecure(url: string, body: unknown): Promise<Response> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value])
              headers.append(name, item);
          }
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
