import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import {
  addMember,
  assertError,
  assertErrorEnvelope,
  createProject,
  del,
  environmentId,
  FAST_HASHING,
  get,
  insertDeploymentFor,
  insertReleaseFor,
  JSON_HEADERS,
  patch,
  post,
  postText,
  prepareJobQueue,
  put,
  RANDOM_ID,
  type Body,
  type ProjectFixture,
  type User,
} from './fixtures.js';

// Local repositories off, and internal.example allowed so that its private address is what
// refuses it (the fake resolver maps it to 10.0.0.5).
const GIT_POLICY_ENV = {
  ...FAST_HASHING,
  SWITCHYARD_ALLOW_LOCAL_GIT: 'false',
  SWITCHYARD_GIT_ALLOWED_HOSTS: 'github.com,gitlab.com,internal.example',
};
const TOO_LARGE = JSON.stringify({ name: 'x'.repeat(1_100_000) });
const GIT_URL = 'https://github.com/acme/api.git';

/** A route with a JSON body, and a body it accepts; tests break that body one way at a time. */
interface JsonRoute {
  key: string;
  method: 'POST' | 'PATCH' | 'PUT';
  url: string;
  valid: Body;
}

function jsonRoute(key: string, target: string, valid: Body): JsonRoute {
  const [method, url] = target.split(' ') as [JsonRoute['method'], string];
  return { key, method, url, valid };
}

const isPublic = (route: JsonRoute) => route.url.startsWith('/v1/auth/');

for (const backend of testBackends()) {
  describe(`bad input on ${backend}`, () => {
    let t: TestApp;
    let stopQueue: () => Promise<void>;
    let owner: User;
    let victim: User;
    let foreignMember: User;
    let mine: ProjectFixture;
    let foreign: ProjectFixture;
    let routes: JsonRoute[];

    const send = (options: InjectOptions, user: User | undefined = owner) =>
      t.app.inject({ ...options, headers: { ...user?.headers, ...options.headers } });
    const sendTo = (route: JsonRoute, payload: unknown, headers: Record<string, string> = {}) =>
      send(
        { method: route.method, url: route.url, payload: payload as Body, headers },
        isPublic(route) ? undefined : owner,
      );
    const routeNamed = (key: string): JsonRoute => {
      const found = routes.find((route) => route.key === key);
      assert.ok(found !== undefined, key);
      return found;
    };

    before(async () => {
      t = await createTestApp(backend, GIT_POLICY_ENV);
      stopQueue = await prepareJobQueue(t);
      await signUp(t.app); // the first account is the instance admin; keep it out of the way
      owner = await signUp(t.app);
      victim = await signUp(t.app);
      foreignMember = await signUp(t.app);
      mine = await createProject(t, owner);
      foreign = await createProject(t, await signUp(t.app));
      await addMember(t, foreign, foreignMember, 'developer');
      await insertReleaseFor(t, mine.serviceId, owner.id);
      const s = `/v1/services/${mine.serviceId}`;
      const p = `/v1/projects/${mine.slug}`;
      routes = [
        jsonRoute('register', 'POST /v1/auth/register', {
          email: 'new@example.com',
          password: 'long enough password',
          name: 'N',
        }),
        jsonRoute('login', 'POST /v1/auth/login', {
          email: victim.email,
          password: victim.password,
        }),
        jsonRoute('refresh', 'POST /v1/auth/refresh', { refreshToken: 'not-a-real-token' }),
        jsonRoute('createProject', 'POST /v1/projects', { name: 'Valid' }),
        jsonRoute('updateProject', `PATCH ${p}`, { name: 'Renamed' }),
        jsonRoute('createEnvironment', `POST ${p}/environments`, { name: 'qa' }),
        jsonRoute('renameEnvironment', `PATCH ${p}/environments/development`, { name: 'dev' }),
        jsonRoute('addMember', `POST ${p}/members`, { email: owner.email, role: 'readonly' }),
        jsonRoute('updateMember', `PATCH ${p}/members/${owner.id}`, { role: 'owner' }),
        jsonRoute('createService', `POST ${p}/services`, { name: 'api', gitUrl: GIT_URL }),
        jsonRoute('updateService', `PATCH ${s}`, { branch: 'main' }),
        jsonRoute('putVariables', `PUT ${s}/env`, { variables: { A: '1' } }),
        jsonRoute('createBuild', `POST ${s}/builds`, { ref: 'main' }),
        jsonRoute('deploy', `POST ${s}/deployments`, { environment: 'staging' }),
        jsonRoute('rollback', `POST ${s}/rollback`, { environment: 'staging' }),
      ];
    });
    after(async () => {
      await stopQueue();
      await t.close();
    });

    it('answers malformed JSON with 400 INVALID_JSON on every route group', async () => {
      for (const route of routes) {
        for (const payload of ['{"name":', '{name: 1}', "{'a':1}", '{"a":1}}']) {
          assertError(
            await sendTo(route, payload, JSON_HEADERS),
            400,
            'INVALID_JSON',
            `${route.key} ${payload}`,
          );
        }
      }
    });

    it('answers wrong types with 400 VALIDATION_FAILED naming the field', async () => {
      const cases: Array<[string, Body, string]> = [
        ['register', { email: { a: 1 }, password: 'long enough password', name: 'N' }, '/email'],
        ['login', { email: victim.email, password: ['a', 'b'] }, '/password'],
        ['refresh', { refreshToken: { token: 'x' } }, '/refreshToken'],
        ['createProject', { name: { text: 'x' } }, '/name'],
        ['updateProject', { archived: 'yes' }, '/archived'],
        ['createEnvironment', { name: ['a', 'b'] }, '/name'],
        ['renameEnvironment', { name: { a: 1 } }, '/name'],
        ['addMember', { email: owner.email, role: 'superuser' }, '/role'],
        ['updateMember', { role: ['owner', 'admin'] }, '/role'],
        [
          'createService',
          { name: 'api', gitUrl: GIT_URL, runtime: { port: 'eighty' } },
          '/runtime/port',
        ],
        ['updateService', { runtime: { instances: 'many' } }, '/runtime/instances'],
        ['putVariables', { variables: { A: { nested: true } } }, '/variables/A'],
        ['createBuild', { ref: { name: 'main' } }, '/ref'],
        ['deploy', { environment: 'staging', replicas: 'two' }, '/replicas'],
        ['rollback', { environment: 'staging', releaseId: 'not-a-uuid' }, '/releaseId'],
      ];
      for (const [key, payload, field] of cases) {
        const response = await sendTo(routeNamed(key), payload);
        const error = assertError(response, 400, 'VALIDATION_FAILED', `${key} ${field}`);
        const paths = (error.details as Array<{ path: string }>).map((detail) => detail.path);
        assert.ok(
          paths.some((path) => path.startsWith(field)),
          `${key}: ${response.body}`,
        );
        assert.ok(error.message.includes(field.slice(1)), `names ${field}: ${error.message}`);
      }
    });

    it('answers unknown fields with 400 VALIDATION_FAILED: nothing is mass-assigned', async () => {
      const extras: Record<string, [string, unknown]> = {
        register: ['isInstanceAdmin', true],
        login: ['isInstanceAdmin', true],
        createProject: ['status', 'archived'],
        updateProject: ['status', 'archived'],
        createEnvironment: ['kind', 'preview'],
        addMember: ['isInstanceAdmin', true],
        updateMember: ['userId', RANDOM_ID],
        createService: ['projectId', RANDOM_ID],
        updateService: ['name', 'renamed'],
        createBuild: ['status', 'succeeded'],
        deploy: ['status', 'live'],
      };
      for (const route of routes) {
        const [field, value] = extras[route.key] ?? ['role', 'owner'];
        const response = await sendTo(route, { ...route.valid, [field]: value });
        const error = assertError(response, 400, 'VALIDATION_FAILED', `${route.key} +${field}`);
        const fields = (error.details as Array<{ field?: string }>).map((detail) => detail.field);
        assert.ok(fields.includes(field), response.body);
      }
      const me = await send(get('/v1/me'));
      assert.equal(me.json<{ isInstanceAdmin: boolean }>().isInstanceAdmin, false);
      const project = await send(get(`/v1/projects/${mine.slug}`));
      assert.equal(project.json<{ status: string }>().status, 'active');
    });

    it('answers bodies over the size limit with 413 PAYLOAD_TOO_LARGE', async () => {
      for (const route of routes) {
        assertError(
          await sendTo(route, TOO_LARGE, JSON_HEADERS),
          413,
          'PAYLOAD_TOO_LARGE',
          route.key,
        );
      }
      const envFile = `A=${'x'.repeat(1_100_000)}\n`;
      const text = await send(postText(`/v1/services/${mine.serviceId}/env/import`, envFile));
      assertError(text, 413, 'PAYLOAD_TOO_LARGE', 'env import');
    });

    it('answers names that are not RFC 1123 labels with 400 naming the field', async () => {
      const p = `/v1/projects/${mine.slug}`;
      const targets: Array<[string, (name: string) => InjectOptions]> = [
        ['slug', (name) => post('/v1/projects', { name: 'Shop', slug: name })],
        ['name', (name) => post(`${p}/environments`, { name })],
        ['name', (name) => patch(`${p}/environments/staging`, { name })],
        ['name', (name) => post(`${p}/services`, { name, gitUrl: GIT_URL })],
      ];
      const badNames = [
        'Upper',
        'under_score',
        'a'.repeat(64),
        '-leading',
        'trailing-',
        'dot.ted',
        'ünï',
        '',
      ];
      for (const [field, request] of targets) {
        for (const name of badNames) {
          const response = await send(request(name));
          const error = assertError(
            response,
            400,
            'VALIDATION_FAILED',
            `${request(name).url} "${name}"`,
          );
          assert.match(error.message, new RegExp(`body/${field} must`));
        }
      }
      const longest = await send(post(`${p}/environments`, { name: `e${'1'.repeat(62)}` }));
      assert.equal(longest.statusCode, 201, '63 characters is still a label');
      const underivable = assertError(
        await send(post('/v1/projects', { name: '🚀🚀' })),
        400,
        'INVALID_NAME',
      );
      assert.match(underivable.message, /give one explicitly/);
    });

    it('answers git URLs that break the policy with 400 GIT_URL_REJECTED, never echoing a credential', async () => {
      const cases: Array<[string, string]> = [
        ['http://github.com/acme/web.git', 'insecure_scheme'],
        ['file:///srv/git/web.git', 'local_not_allowed'],
        ['/srv/git/web.git', 'local_not_allowed'],
        ['https://x-access-token:ghp_SeCrEt123@github.com/acme/web.git', 'credentials_in_url'],
        ['https://ghp_SeCrEt123@github.com/acme/web.git', 'credentials_in_url'],
        ['https://git.evil.example/acme/web.git', 'host_not_allowed'],
        ['https://internal.example/acme/web.git', 'blocked_address'],
        ['ssh://git@internal.example/acme/web.git', 'blocked_address'],
        ['https://127.0.0.1/acme/web.git', 'blocked_address'],
        ['ext::sh -c touch% /tmp/pwned', 'control_characters'],
      ];
      for (const [gitUrl, reason] of cases) {
        const created = await send(
          post(`/v1/projects/${mine.slug}/services`, { name: 'no', gitUrl }),
        );
        const updated = await send(patch(`/v1/services/${mine.serviceId}`, { gitUrl }));
        for (const response of [created, updated]) {
          const error = assertError(response, 400, 'GIT_URL_REJECTED', gitUrl);
          assert.deepEqual(error.details, { reason }, gitUrl);
          assert.ok(!response.body.includes('SeCrEt123'), `credential echoed: ${response.body}`);
        }
      }
    });

    it('answers ids of another project exactly as it answers ids that do not exist', async () => {
      const { buildId, releaseId } = await insertReleaseFor(t, foreign.serviceId, foreign.owner.id);
      const foreignEnv = await environmentId(t, foreign, 'staging');
      const deploymentId = await insertDeploymentFor(t, {
        serviceId: foreign.serviceId,
        environmentId: foreignEnv,
        releaseId,
      });
      const s = `/v1/services/${mine.serviceId}`;
      const m = `/v1/projects/${mine.slug}/members`;

      const cases: Array<[string, (id: string) => InjectOptions]> = [
        [foreign.id, (id) => get(`/v1/projects/${id}`)],
        [foreign.id, (id) => patch(`/v1/projects/${id}`, { name: 'Mine now' })],
        [foreign.id, (id) => del(`/v1/projects/${id}`)],
        [foreign.id, (id) => post(`/v1/projects/${id}/services`, { name: 'x', gitUrl: GIT_URL })],
        [
          foreign.id,
          (id) => post(`/v1/projects/${id}/members`, { email: owner.email, role: 'owner' }),
        ],
        [foreign.serviceId, (id) => get(`/v1/services/${id}`)],
        [foreign.serviceId, (id) => patch(`/v1/services/${id}`, { branch: 'x' })],
        [foreign.serviceId, (id) => del(`/v1/services/${id}`)],
        [foreign.serviceId, (id) => get(`/v1/services/${id}/env`)],
        [foreign.serviceId, (id) => put(`/v1/services/${id}/env`, { variables: {} })],
        [foreign.serviceId, (id) => post(`/v1/services/${id}/builds`, {})],
        [
          foreign.serviceId,
          (id) => post(`/v1/services/${id}/deployments`, { environment: 'staging' }),
        ],
        [foreign.serviceId, (id) => get(`/v1/services/${id}/releases`)],
        [foreign.serviceId, (id) => get(`/v1/services/${id}/status?environment=staging`)],
        [buildId, (id) => get(`/v1/builds/${id}`)],
        [buildId, (id) => get(`/v1/builds/${id}/logs`)],
        [releaseId, (id) => get(`/v1/releases/${id}`)],
        [deploymentId, (id) => get(`/v1/deployments/${id}`)],
        [deploymentId, (id) => get(`/v1/deployments/${id}/logs`)],
        [foreignEnv, (id) => get(`/v1/projects/${mine.slug}/environments/${id}`)],
        [foreignEnv, (id) => post(`${s}/deployments`, { environment: id })],
        [releaseId, (id) => post(`${s}/deployments`, { environment: 'staging', releaseId: id })],
        [releaseId, (id) => post(`${s}/rollback`, { environment: 'staging', releaseId: id })],
        [foreignMember.id, (id) => patch(`${m}/${id}`, { role: 'admin' })],
        [foreignMember.id, (id) => del(`${m}/${id}`)],
      ];
      for (const [foreignId, request] of cases) {
        const label = `${request(foreignId).method} ${request(foreignId).url}`;
        const seen = await send(request(foreignId));
        const unseen = await send(request(RANDOM_ID));
        const seenError = assertErrorEnvelope(seen, label);
        const unseenError = assertErrorEnvelope(unseen, label);
        assert.ok(seen.statusCode === 404 || seen.statusCode === 422, `${label}: ${seen.body}`);
        assert.equal(seen.statusCode, unseen.statusCode, label);
        assert.equal(seenError.code, unseenError.code, label);
        const [seenText, unseenText] = [
          seenError.message.replaceAll(foreignId, '<id>'),
          unseenError.message.replaceAll(RANDOM_ID, '<id>'),
        ];
        assert.equal(seenText, unseenText, label);
      }
    });

    it('answers an id that is not a uuid with 400 VALIDATION_FAILED', async () => {
      const requests = [
        get('/v1/services/not-a-uuid'),
        get('/v1/services/123/env'),
        get('/v1/services/00000000-0000-4000-8000-00000000000g/builds'),
        get('/v1/builds/1'),
        get('/v1/builds/abc/logs'),
        get('/v1/releases/%27%20or%201=1'),
        get('/v1/deployments/00000000000040008000000000000000'),
        patch(`/v1/projects/${mine.slug}/members/me`, { role: 'admin' }),
      ];
      for (const request of requests)
        assertError(await send(request), 400, 'VALIDATION_FAILED', request.url as string);
    });

    it('answers bad pagination with 400 on every list', async () => {
      const cursor = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
      const p = `/v1/projects/${mine.slug}`;
      const s = `/v1/services/${mine.serviceId}`;
      const lists = [
        '/v1/projects',
        `${p}/environments`,
        `${p}/members`,
        `${p}/services`,
        `${s}/builds`,
        `${s}/releases`,
        `${s}/deployments`,
      ];
      const bad: Array<[string, string]> = [
        ...['0', '101', 'abc', '-1', '2.5', '1e400', 'Infinity', ''].map(
          (limit): [string, string] => [`limit=${limit}`, 'VALIDATION_FAILED'],
        ),
        ['cursor=forged', 'INVALID_CURSOR'],
        [`cursor=${cursor(`2024-01-01T00:00:00.000000Z|${RANDOM_ID}|extra`)}`, 'INVALID_CURSOR'],
        [`cursor=${cursor('2024-01-01T00:00:00Z|not-a-uuid')}`, 'INVALID_CURSOR'],
        [`cursor=${cursor(`2024-13-45T25:61:61.000000Z|${RANDOM_ID}`)}`, 'INVALID_CURSOR'],
        [`cursor=${'a'.repeat(201)}`, 'VALIDATION_FAILED'],
        ['page=2', 'VALIDATION_FAILED'],
      ];
      for (const list of lists) {
        for (const [query, code] of bad)
          assertError(await send(get(`${list}?${query}`)), 400, code, `${list}?${query}`);
      }
    });

    it('never answers 500 to odd bodies', async () => {
      const odd = [
        null,
        1e308,
        -1e308,
        2 ** 64,
        'a\u0000b',
        '\u202e😀ü',
        'x'.repeat(10_000),
        {},
        [[]],
        true,
      ];
      const rawBodies = ['', '[]', 'null', '"text"', '0'];
      for (const route of routes) {
        const payloads: unknown[] = [];
        for (const [field, valid] of Object.entries(route.valid)) {
          for (const value of odd)
            payloads.push({ ...route.valid, [field]: replaceDeep(valid, value) });
        }
        const attempts = [
          ...rawBodies.map((raw) => () => sendTo(route, raw, JSON_HEADERS)),
          ...payloads.map((payload) => () => sendTo(route, payload)),
        ];
        for (const [index, attempt] of attempts.entries()) {
          const response = await attempt();
          const label = `${route.key} #${index}`;
          assert.ok(response.statusCode < 500, `${label}: ${response.body}`);
          if (response.statusCode >= 400) assertErrorEnvelope(response, label);
        }
      }
    });

    it('never answers 500 to odd path segments and query values', async () => {
      const weird = [
        '%00',
        'a%00b',
        '%C3%BC',
        '..',
        '%2e%2e',
        'a'.repeat(300),
        '%20',
        '*',
        "'%3B--",
      ];
      weird.push('%F0%9F%98%80', '%E2%82', '%ff', 'Infinity', '1e400');
      const s = `/v1/services/${mine.serviceId}`;
      for (const segment of weird) {
        const requests = [
          get(`/v1/projects/${segment}`),
          get(`/v1/projects/${segment}/members`),
          get(`/v1/projects/${mine.slug}/environments/${segment}`),
          get(`${s}/status?environment=${segment}`),
          get(`${s}/deployments?environment=${segment}`),
          get(`/v1/projects?cursor=${segment}`),
          get(`/v1/projects?limit=${segment}`),
          get(`/v1/builds/${segment}/logs?follow=${segment}`),
          get(`/v1/deployments/${RANDOM_ID}/logs?tail=${segment}`),
          post(`${s}/deployments`, { environment: decodeOrKeep(segment) }),
          del(`/v1/projects/${mine.slug}/environments/${segment}`),
        ];
        for (const request of requests) {
          const response = await send(request);
          assert.ok(response.statusCode < 500, `${request.url}: ${response.body}`);
          if (response.statusCode >= 400) assertErrorEnvelope(response, String(request.url));
        }
      }
    });
  });
}

/** The value put where `original` was, one level down for objects (so nested fields get it too). */
function replaceDeep(original: unknown, value: unknown): unknown {
  if (original === null || typeof original !== 'object' || Array.isArray(original)) return value;
  return Object.fromEntries(Object.keys(original).map((key) => [key, value]));
}

function decodeOrKeep(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
