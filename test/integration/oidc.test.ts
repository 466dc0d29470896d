/**
 * Single sign-on against a real OpenID provider (the `oidc-provider` package) started on
 * 127.0.0.1 by the test: authorization code with PKCE, state and nonce, groups to roles.
 * The browser's part is played by fetch with a small cookie jar.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { testBackends } from '../support/database.js';
import {
  createIdentityTestApp,
  newUser,
  PASSWORD,
  type IdentityTestApp,
} from '../support/identity.js';

const CLIENT_ID = 'switchyard';
const CLIENT_SECRET = 'a-test-client-secret-of-some-length';
const REDIRECT_URI = 'http://127.0.0.1:8080/v1/auth/oidc/callback';

interface Account {
  email: string;
  emailVerified: boolean;
  name: string;
  groups: string[];
}

/** The identity provider's users; tests change their groups between sign-ins. */
const accounts = new Map<string, Account>();

async function startProvider(): Promise<{ issuer: string; server: Server }> {
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    cookies: { keys: ['a-cookie-signing-key-for-tests'] },
    pkce: { required: () => true },
    findAccount: async (_ctx, id) => {
      const account = accounts.get(id);
      if (account === undefined) return undefined;
      return {
        accountId: id,
        claims: async () => ({
          sub: id,
          email: account.email,
          email_verified: account.emailVerified,
          name: account.name,
          groups: account.groups,
        }),
      };
    },
  });
  handle = provider.callback();
  return { issuer, server };
}

/** A browser's cookie jar, good enough for one host. */
class Jar {
  readonly cookies = new Map<string, string>();
  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair?.indexOf('=') ?? -1;
      if (pair === undefined || at < 0) continue;
      this.cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1));
    }
  }
  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

for (const backend of testBackends()) {
  describe(`single sign-on with OpenID Connect on ${backend}`, () => {
    let t: IdentityTestApp;
    let provider: { issuer: string; server: Server };
    let owner: Awaited<ReturnType<typeof newUser>>;
    const shop = `shop-${Date.now()}`;
    const billing = `billing-${Date.now()}`;

    before(async () => {
      provider = await startProvider();
      t = await createIdentityTestApp(backend, {
        env: {
          SWITCHYARD_OIDC_ISSUER: provider.issuer,
          SWITCHYARD_OIDC_CLIENT_ID: CLIENT_ID,
          SWITCHYARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
          SWITCHYARD_OIDC_REDIRECT_URI: REDIRECT_URI,
          SWITCHYARD_OIDC_SCOPES: 'openid email profile groups',
          SWITCHYARD_OIDC_ADMIN_GROUPS: 'platform-admins',
          // Instance-wide mapping, by project slug.
          SWITCHYARD_OIDC_GROUP_ROLES: `sre=${billing}:admin`,
        },
      });
      owner = await newUser(t.app, 'owner'); // first account: instance admin
      for (const slug of [shop, billing]) {
        await t.app.inject({
          method: 'POST',
          url: '/v1/projects',
          headers: owner.headers,
          payload: { name: slug, slug },
        });
      }
      // Per-project mapping, through the API.
      const mapped = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${shop}/group-roles`,
        headers: owner.headers,
        payload: { mappings: [{ group: 'eng', role: 'developer' }] },
      });
      assert.equal(mapped.statusCode, 200, mapped.body);
    });
    after(async () => {
      await t?.close();
      provider?.server.close();
    });

    /** Plays the browser from Switchyard's login redirect to its callback; answers the callback's response. */
    async function signIn(accountId: string, redirect = '/dashboard') {
      const begin = await t.app.inject({
        url: `/v1/auth/oidc/login?redirect=${encodeURIComponent(redirect)}`,
      });
      assert.equal(begin.statusCode, 302, begin.body);
      const state = begin.cookies.find((cookie) => cookie.name === 'sy_oidc');
      assert.ok(state !== undefined && state.httpOnly === true);
      const jar = new Jar();
      let url = String(begin.headers.location);
      for (let hop = 0; hop < 12 && !url.startsWith(REDIRECT_URI); hop++) {
        let response = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header() } });
        jar.store(response);
        if (response.status === 200) {
          const html = await response.text();
          const body = html.includes('value="login"')
            ? `prompt=login&login=${accountId}&password=any`
            : 'prompt=consent';
          response = await fetch(url, {
            method: 'POST',
            redirect: 'manual',
            headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
            body,
          });
          jar.store(response);
        }
        url = new URL(response.headers.get('location') ?? '', url).href;
      }
      const callback = new URL(url);
      return {
        authorizationUrl: new URL(String(begin.headers.location)),
        callback: await t.app.inject({
          url: `${callback.pathname}${callback.search}`,
          cookies: { sy_oidc: state.value },
        }),
        callbackUrl: callback,
        stateCookie: state.value,
      };
    }

    const cookieHeaders = (response: Awaited<ReturnType<typeof t.app.inject>>) =>
      Object.fromEntries(
        response.cookies.filter((c) => c.name === 'sy_access').map((c) => [c.name, c.value]),
      );

    it('signs a new person in with PKCE and a browser session, and maps their group to a project role', async () => {
      accounts.set('alice', {
        email: `alice-${Date.now()}@example.com`,
        emailVerified: true,
        name: 'Alice',
        groups: ['eng'],
      });
      const { authorizationUrl, callback } = await signIn('alice');
      assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
      assert.ok((authorizationUrl.searchParams.get('code_challenge') ?? '').length >= 43);
      assert.ok(authorizationUrl.searchParams.get('nonce'));
      assert.ok(authorizationUrl.searchParams.get('state'));

      assert.equal(callback.statusCode, 302, callback.body);
      assert.equal(callback.headers.location, '/dashboard');
      const cookies = cookieHeaders(callback);
      const me = await t.app.inject({ url: '/v1/me', cookies });
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().name, 'Alice');
      const members = await t.app.inject({
        url: `/v1/projects/${shop}/members`,
        headers: owner.headers,
      });
      const alice = members
        .json<{ data: Array<{ userId: string; role: string }> }>()
        .data.find((m) => m.userId === me.json().id);
      assert.equal(alice?.role, 'developer');
      const sessions = await t.app.inject({ url: '/v1/me/sessions', cookies });
      assert.equal(sessions.json().data[0].method, 'oidc');
      assert.equal(sessions.json().data[0].transport, 'cookie');
    });

    it('applies instance-wide group mappings and admin groups', async () => {
      accounts.set('bob', {
        email: `bob-${Date.now()}@example.com`,
        emailVerified: true,
        name: 'Bob',
        groups: ['sre', 'platform-admins'],
      });
      const { callback } = await signIn('bob');
      assert.equal(callback.statusCode, 302, callback.body);
      const me = await t.app.inject({ url: '/v1/me', cookies: cookieHeaders(callback) });
      assert.equal(me.json().isInstanceAdmin, true);
      const members = await t.app.inject({
        url: `/v1/projects/${billing}/members`,
        headers: owner.headers,
      });
      const bob = members
        .json<{ data: Array<{ userId: string; role: string }> }>()
        .data.find((m) => m.userId === me.json().id);
      assert.equal(bob?.role, 'admin');
    });

    it('follows group changes at the next sign-in, leaving grants made by people alone', async () => {
      accounts.set('carol', {
        email: `carol-${Date.now()}@example.com`,
        emailVerified: true,
        name: 'Carol',
        groups: ['eng'],
      });
      const first = await signIn('carol');
      const carolId = (
        await t.app.inject({ url: '/v1/me', cookies: cookieHeaders(first.callback) })
      ).json<{ id: string }>().id;
      const added = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${billing}/members`,
        headers: owner.headers,
        payload: { email: accounts.get('carol')?.email, role: 'readonly' },
      });
      assert.equal(added.statusCode, 201, added.body);

      accounts.set('carol', { ...(accounts.get('carol') as Account), groups: [] });
      const second = await signIn('carol');
      assert.equal(second.callback.statusCode, 302);
      const shopMembers = await t.app.inject({
        url: `/v1/projects/${shop}/members`,
        headers: owner.headers,
      });
      assert.ok(
        !shopMembers
          .json<{ data: Array<{ userId: string }> }>()
          .data.some((m) => m.userId === carolId),
        'the SSO grant is gone',
      );
      const billingMembers = await t.app.inject({
        url: `/v1/projects/${billing}/members`,
        headers: owner.headers,
      });
      assert.ok(
        billingMembers
          .json<{ data: Array<{ userId: string }> }>()
          .data.some((m) => m.userId === carolId),
        'the manual grant stays',
      );
    });

    it('links an existing account only when the provider verified the email', async () => {
      const local = await newUser(t.app);
      accounts.set('dave', { email: local.email, emailVerified: false, name: 'Dave', groups: [] });
      const unverified = await signIn('dave');
      assert.equal(unverified.callback.statusCode, 401);
      assert.equal(unverified.callback.json().error.code, 'OIDC_SIGN_IN_FAILED');

      accounts.set('dave', { email: local.email, emailVerified: true, name: 'Dave', groups: [] });
      const verified = await signIn('dave');
      assert.equal(verified.callback.statusCode, 302, verified.callback.body);
      const me = await t.app.inject({ url: '/v1/me', cookies: cookieHeaders(verified.callback) });
      assert.equal(me.json().id, local.id);
      await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: local.email, password: PASSWORD },
      });
    });

    it('refuses a callback without the state cookie of the browser that started it, or with a forged state', async () => {
      accounts.set('erin', {
        email: `erin-${Date.now()}@example.com`,
        emailVerified: true,
        name: 'Erin',
        groups: [],
      });
      const { callbackUrl, stateCookie } = await signIn('erin');
      const path = `${callbackUrl.pathname}${callbackUrl.search}`;
      const noCookie = await t.app.inject({ url: path });
      assert.equal(noCookie.statusCode, 401);
      const forged = new URL(callbackUrl);
      forged.searchParams.set('state', 'forged-state');
      const wrongState = await t.app.inject({
        url: `${forged.pathname}${forged.search}`,
        cookies: { sy_oidc: stateCookie },
      });
      assert.equal(wrongState.statusCode, 401);
      assert.equal(wrongState.json().error.code, 'OIDC_SIGN_IN_FAILED');
    });

    it('redirects only to paths on this site after sign-in', async () => {
      accounts.set('frank', {
        email: `frank-${Date.now()}@example.com`,
        emailVerified: true,
        name: 'Frank',
        groups: [],
      });
      const { callback } = await signIn('frank', '//evil.example.com/phish');
      assert.equal(callback.statusCode, 302);
      assert.equal(callback.headers.location, '/');
    });
  });
}

describe('single sign-on when not configured', () => {
  it('answers 404 OIDC_NOT_CONFIGURED', async () => {
    const t = await createIdentityTestApp(testBackends()[0] ?? 'pglite');
    try {
      const response = await t.app.inject({ url: '/v1/auth/oidc/login' });
      assert.equal(response.statusCode, 404);
      assert.equal(response.json().error.code, 'OIDC_NOT_CONFIGURED');
    } finally {
      await t.close();
    }
  });
});
