import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import {
  addMember,
  assertError,
  createProject,
  del,
  insertReleaseFor,
  patch,
  post,
  postText,
  prepareJobQueue,
  put,
  uniqueName,
  type ProjectFixture,
  type Role,
  type User,
  FAST_HASHING,
} from './fixtures.js';

/** Who tries: a member in each role, a stranger, and a member of some other project. */
type Actor = Role | 'non-member' | 'other-project-member';
const ACTORS: Actor[] = [
  'owner',
  'admin',
  'developer',
  'readonly',
  'non-member',
  'other-project-member',
];
const RANK: Record<Role, number> = { readonly: 0, developer: 1, admin: 2, owner: 3 };
const PAST = '2020-01-01T00:00:00Z';

/** The least role that may act, what the action is, and one attempt at it (a fresh target each time). */
type WriteRoute = [needs: Role, action: string, attempt: () => Promise<InjectOptions>];

/** Service routes hide a foreign service as SERVICE_NOT_FOUND, project routes as PROJECT_NOT_FOUND. */
const notFoundFor = (url: string) =>
  url.startsWith('/v1/services/') ? 'SERVICE_NOT_FOUND' : 'PROJECT_NOT_FOUND';

for (const backend of testBackends()) {
  describe(`the role matrix on ${backend}`, () => {
    let t: TestApp;
    let stopQueue: () => Promise<void>;
    const users = {} as Record<Actor | 'candidate' | 'expired' | 'scoped', User>;
    let project: ProjectFixture;
    let releaseId: string;

    const as = (user: User, options: InjectOptions) =>
      t.app.inject({ ...options, headers: { ...user.headers, ...(options.headers ?? {}) } });
    const asOwner = (options: InjectOptions) => as(project.owner, options);

    const p = () => `/v1/projects/${project.slug}`;
    const s = () => `/v1/services/${project.serviceId}`;

    /** Makes the candidate a member with `role` (or no member); returns its member URL. */
    async function candidate(role: Role | undefined): Promise<string> {
      const url = `${p()}/members/${users.candidate.id}`;
      await asOwner(del(url));
      if (role !== undefined) await addMember(t, project, users.candidate, role);
      return url;
    }

    /** The request that adds the candidate, removed first, with `role`. */
    async function addCandidate(role: Role): Promise<InjectOptions> {
      await candidate(undefined);
      return post(`${p()}/members`, { email: users.candidate.email, role });
    }

    /** A new environment of the project; returns its URL. */
    async function freshEnvironment(): Promise<string> {
      const name = uniqueName('env');
      const created = await asOwner(post(`${p()}/environments`, { name }));
      assert.equal(created.statusCode, 201, created.body);
      return `${p()}/environments/${name}`;
    }

    /** A new service of the project; returns its URL. */
    async function freshService(): Promise<string> {
      const gitUrl = 'https://github.com/acme/x.git';
      const created = await asOwner(post(`${p()}/services`, { name: uniqueName('svc'), gitUrl }));
      assert.equal(created.statusCode, 201, created.body);
      return `/v1/services/${created.json<{ id: string }>().id}`;
    }

    before(async () => {
      t = await createTestApp(backend, FAST_HASHING);
      stopQueue = await prepareJobQueue(t);
      await signUp(t.app); // the first account is the instance admin, an owner everywhere
      for (const name of [...ACTORS, 'candidate', 'expired', 'scoped'] as const)
        users[name] = await signUp(t.app);
      project = await createProject(t, users.owner);
      for (const role of ['admin', 'developer', 'readonly'] as const)
        await addMember(t, project, users[role], role);
      await addMember(t, project, users.expired, 'admin', { expiresAt: PAST });
      await addMember(t, project, users.scoped, 'developer', { environment: 'staging' });
      await createProject(t, users['other-project-member']);
      releaseId = (await insertReleaseFor(t, project.serviceId, users.owner.id)).releaseId;
    });
    after(async () => {
      await stopQueue();
      await t.close();
    });

    const newService = () => ({ name: uniqueName('api'), gitUrl: 'https://github.com/a/b.git' });
    const routes: WriteRoute[] = [
      ['admin', 'rename the project', async () => patch(p(), { name: uniqueName('Renamed') })],
      [
        'admin',
        'create an environment',
        async () => post(`${p()}/environments`, { name: uniqueName('qa') }),
      ],
      [
        'admin',
        'rename an environment',
        async () => patch(await freshEnvironment(), { name: uniqueName('r') }),
      ],
      ['admin', 'delete an environment', async () => del(await freshEnvironment())],
      ['admin', 'add a member', () => addCandidate('developer')],
      ['owner', 'add an owner', () => addCandidate('owner')],
      [
        'admin',
        "change a member's role",
        async () => patch(await candidate('readonly'), { role: 'developer' }),
      ],
      [
        'owner',
        'promote a member to owner',
        async () => patch(await candidate('admin'), { role: 'owner' }),
      ],
      ['owner', 'demote an owner', async () => patch(await candidate('owner'), { role: 'admin' })],
      ['admin', 'remove a member', async () => del(await candidate('developer'))],
      ['owner', 'remove an owner', async () => del(await candidate('owner'))],
      ['developer', 'create a service', async () => post(`${p()}/services`, newService())],
      ['developer', 'update a service', async () => patch(s(), { branch: uniqueName('branch') })],
      ['admin', 'delete a service', async () => del(await freshService())],
      [
        'developer',
        'replace the variables',
        async () => put(`${s()}/env`, { variables: { GREETING: 'hi' } }),
      ],
      [
        'developer',
        'import a .env file',
        async () => postText(`${s()}/env/import`, 'GREETING=hi\n'),
      ],
      ['developer', 'start a build', async () => post(`${s()}/builds`, {})],
      [
        'developer',
        'deploy',
        async () => post(`${s()}/deployments`, { environment: 'staging', releaseId }),
      ],
      [
        'developer',
        'roll back',
        async () => post(`${s()}/rollback`, { environment: 'production', releaseId }),
      ],
    ];

    for (const [needs, action, attempt] of routes) {
      it(`lets ${needs} and above ${action}; 403 below; 404 to non-members`, async () => {
        for (const actor of ACTORS) {
          const request = await attempt();
          const response = await as(users[actor], request);
          const isAllowed = actor in RANK && RANK[actor as Role] >= RANK[needs];
          assertOutcome(actor, isAllowed, String(request.url), response);
        }
      });
    }

    /** Asserts what `actor` was told: success, 403 FORBIDDEN, or the not-found of `url`. */
    function assertOutcome(
      actor: Actor,
      isAllowed: boolean,
      url: string,
      response: LightMyRequestResponse,
    ) {
      if (actor === 'non-member' || actor === 'other-project-member') {
        assertError(response, 404, notFoundFor(url), actor);
      } else if (isAllowed) {
        assert.ok(response.statusCode < 300, `${actor}: ${response.statusCode} ${response.body}`);
      } else {
        assertError(response, 403, 'FORBIDDEN', actor);
      }
    }

    it('lets only an owner delete the project; 403 below; 404 to others', async () => {
      for (const actor of ACTORS) {
        const doomed = await createProject(t, users.owner);
        for (const role of ['admin', 'developer', 'readonly'] as const) {
          await addMember(t, doomed, users[role], role);
        }
        const url = `/v1/projects/${doomed.slug}`;
        assertOutcome(actor, actor === 'owner', url, await as(users[actor], del(url)));
      }
    });

    it('lets every member read, and hides the project from everyone else', async () => {
      const reads = [
        p(),
        `${p()}/environments`,
        `${p()}/members`,
        `${p()}/services`,
        s(),
        `${s()}/env`,
      ];
      for (const actor of ACTORS) {
        for (const url of [...reads, `${s()}/releases`, `/v1/releases/${releaseId}`]) {
          const response = await as(users[actor], { url });
          const isMember = actor !== 'non-member' && actor !== 'other-project-member';
          assert.equal(
            response.statusCode,
            isMember ? 200 : 404,
            `${actor} ${url}: ${response.body}`,
          );
        }
      }
    });

    it('treats an expired grant exactly like no grant', async () => {
      const expired = users.expired;
      assertError(await as(expired, { url: p() }), 404, 'PROJECT_NOT_FOUND');
      assertError(await as(expired, patch(p(), { name: 'x' })), 404, 'PROJECT_NOT_FOUND');
      assertError(await as(expired, { url: `${s()}/env` }), 404, 'SERVICE_NOT_FOUND');
      assertError(await as(expired, post(`${s()}/builds`, {})), 404, 'SERVICE_NOT_FOUND');
      assertError(
        await as(expired, { url: `/v1/releases/${releaseId}` }),
        404,
        'RELEASE_NOT_FOUND',
      );
      const listed = await as(expired, { url: '/v1/projects' });
      assert.deepEqual(listed.json<{ data: unknown[] }>().data, []);

      const grant = `${p()}/members/${expired.id}`;
      const renewed = await asOwner(
        patch(grant, { role: 'admin', expiresAt: '2999-01-01T00:00:00Z' }),
      );
      assert.equal(renewed.statusCode, 200, renewed.body);
      assert.equal((await as(expired, { url: p() })).statusCode, 200);
      await asOwner(patch(grant, { role: 'admin', expiresAt: PAST }));
    });

    it('lets an environment-scoped developer deploy and roll back only in that environment', async () => {
      const scoped = users.scoped;
      const countIn = async (environment: string) => {
        const url = `${s()}/deployments?environment=${environment}&limit=100`;
        return (await asOwner({ url })).json<{ data: unknown[] }>().data.length;
      };
      const before = {
        production: await countIn('production'),
        development: await countIn('development'),
      };
      const staging = await countIn('staging');

      for (const route of ['deployments', 'rollback']) {
        const response = await as(
          scoped,
          post(`${s()}/${route}`, { environment: 'staging', releaseId }),
        );
        assert.equal(response.statusCode, 202, response.body);
      }
      for (const environment of ['production', 'development'] as const) {
        for (const route of ['deployments', 'rollback']) {
          const response = await as(scoped, post(`${s()}/${route}`, { environment, releaseId }));
          assertError(response, 403, 'FORBIDDEN', `${route} to ${environment}`);
        }
        assert.equal(
          await countIn(environment),
          before[environment],
          `nothing reached ${environment}`,
        );
      }
      assert.equal(await countIn('staging'), staging + 2);
    });

    it('makes an archived project read-only for every role, until an admin unarchives it', async () => {
      const archived = await createProject(t, users.owner);
      await addMember(t, archived, users.admin, 'admin');
      await addMember(t, archived, users.developer, 'developer');
      const release = await insertReleaseFor(t, archived.serviceId, users.owner.id);
      const service = `/v1/services/${archived.serviceId}`;
      const home = `/v1/projects/${archived.slug}`;
      assert.equal((await asOwner(patch(home, { archived: true }))).statusCode, 200);

      const gitUrl = 'https://github.com/acme/api.git';
      const writes: Array<[Role, InjectOptions]> = [
        ['admin', post(`${home}/environments`, { name: 'qa' })],
        ['admin', del(`${home}/environments/development`)],
        ['admin', post(`${home}/members`, { email: users.candidate.email, role: 'readonly' })],
        ['developer', post(`${home}/services`, { name: 'api', gitUrl })],
        ['developer', patch(service, { branch: 'dev' })],
        ['developer', put(`${service}/env`, { variables: { A: '1' } })],
        ['developer', post(`${service}/builds`, {})],
        [
          'developer',
          post(`${service}/deployments`, { environment: 'staging', releaseId: release.releaseId }),
        ],
        ['admin', del(service)],
      ];
      for (const actor of ['owner', 'admin', 'developer'] as const) {
        for (const [needs, write] of writes) {
          const label = `${actor} ${write.method} ${write.url}`;
          const error = assertError(await as(users[actor], write), 403, 'FORBIDDEN', label);
          if (RANK[actor] >= RANK[needs]) assert.match(error.message, /archived/, label);
        }
        assert.equal(
          (await as(users[actor], { url: service })).statusCode,
          200,
          'reads still work',
        );
      }
      const unarchive = patch(home, { archived: false });
      assertError(await as(users.developer, unarchive), 403, 'FORBIDDEN');
      assert.equal((await as(users.admin, unarchive)).statusCode, 200);
      assert.equal((await as(users.developer, patch(service, { branch: 'dev' }))).statusCode, 200);
    });

    it('never removes or demotes the last owner: 409 MEMBER_LAST_OWNER', async () => {
      const solo = await createProject(t, users.owner);
      const first = `/v1/projects/${solo.slug}/members/${users.owner.id}`;
      assertError(await asOwner(patch(first, { role: 'admin' })), 409, 'MEMBER_LAST_OWNER');
      assertError(await asOwner(del(first)), 409, 'MEMBER_LAST_OWNER');

      await addMember(t, solo, users.admin, 'owner');
      assert.equal((await asOwner(patch(first, { role: 'admin' }))).statusCode, 200);
      const last = users.admin;
      const second = `/v1/projects/${solo.slug}/members/${last.id}`;
      assertError(await as(last, patch(second, { role: 'readonly' })), 409, 'MEMBER_LAST_OWNER');
      assertError(await as(last, del(second)), 409, 'MEMBER_LAST_OWNER');
      assert.equal((await as(last, del(first))).statusCode, 204);
      const remaining = await as(last, { url: `/v1/projects/${solo.slug}/members` });
      const roles = remaining.json<{ data: Array<{ role: string }> }>().data.map((m) => m.role);
      assert.deepEqual(roles, ['owner']);
    });
  });
}
