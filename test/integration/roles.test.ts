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
const FUTURE = '2999-01-01T00:00:00Z';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

/** The least role that may act, what the action is, and one attempt at it (a fresh target each time). */
type WriteRoute = [needs: Role, action: string, attempt: () => Promise<InjectOptions>];

/** Service routes hide a foreign service as SERVICE_NOT_FOUND, project routes as PROJECT_NOT_FOUND. */
const notFoundFor = (url: string) =>
  url.startsWith('/v1/services/') ? 'SERVICE_NOT_FOUND' : 'PROJECT_NOT_FOUND';

for (const backend of testBackends()) {
  describe(`the role matrix on ${backend}`, () => {
    let t: TestApp;
    let stopQueue: () => Promise<void>;
    const users = {} as Record<
      Actor | 'candidate' | 'expired' | 'scoped' | 'limitedAdmin' | 'expiring',
      User
    >;
    let project: ProjectFixture;
    let releaseId: string;

    const as = (user: User, options: InjectOptions) =>
      t.app.inject({ ...options, headers: { ...user.headers, ...(options.headers ?? {}) } });
    const asOwner = (options: InjectOptions) => as(project.owner, options);

    const p = () => `/v1/projects/${project.slug}`;
    const s = () => `/v1/services/${project.serviceId}`;

    /** Lets a grant lapse: the API refuses an expiry in the past, so time passes in the database. */
    async function expireGrant(user: User, inProject = project): Promise<void> {
      await t.deps.database.db
        .updateTable('project_members')
        .set({ expires_at: new Date(PAST) })
        .where('project_id', '=', inProject.id)
        .where('user_id', '=', user.id)
        .execute();
    }

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
      const extras = ['candidate', 'expired', 'scoped', 'limitedAdmin', 'expiring'] as const;
      for (const name of [...ACTORS, ...extras]) users[name] = await signUp(t.app);
      project = await createProject(t, users.owner);
      for (const role of ['admin', 'developer', 'readonly'] as const)
        await addMember(t, project, users[role], role);
      await addMember(t, project, users.expired, 'admin', { expiresAt: FUTURE });
      await expireGrant(users.expired);
      await addMember(t, project, users.scoped, 'developer', { environment: 'staging' });
      await addMember(t, project, users.limitedAdmin, 'admin', { environment: 'staging' });
      await addMember(t, project, users.expiring, 'admin', { expiresAt: inDays(10) });
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
      await expireGrant(expired);
    });

    it('refuses an expiry in the past with 400 MEMBER_EXPIRY_INVALID, adding or changing', async () => {
      const adding = post(`${p()}/members`, {
        email: users.candidate.email,
        role: 'readonly',
        expiresAt: PAST,
      });
      await candidate(undefined);
      assertError(await asOwner(adding), 400, 'MEMBER_EXPIRY_INVALID');
      const changing = patch(await candidate('readonly'), { role: 'readonly', expiresAt: PAST });
      assertError(await asOwner(changing), 400, 'MEMBER_EXPIRY_INVALID');
      const members = await asOwner({ url: `${p()}/members?limit=100` });
      const row = members
        .json<{ data: Array<{ userId: string; expiresAt: string | null }> }>()
        .data.find((member) => member.userId === users.candidate.id);
      assert.equal(row?.expiresAt, null, 'the refused change left the grant as it was');
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

    it('keeps an admin limited to staging out of everything that reaches the whole project', async () => {
      const frank = users.limitedAdmin;
      await candidate(undefined);
      const env = `${p()}/environments`;
      const attempts: InjectOptions[] = [
        patch(`${p()}/members/${frank.id}`, { role: 'admin', environment: null }),
        post(`${p()}/members`, { email: users.candidate.email, role: 'admin' }),
        post(`${p()}/members`, {
          email: users.candidate.email,
          role: 'admin',
          environment: 'production',
        }),
        post(`${p()}/members`, {
          email: users.candidate.email,
          role: 'readonly',
          environment: 'staging',
        }),
        del(`${p()}/members/${users.admin.id}`),
        patch(`${p()}/members/${users.scoped.id}`, { role: 'admin' }),
        patch(p(), { name: uniqueName('Renamed') }),
        patch(p(), { archived: true }),
        patch(`${env}/development`, { name: uniqueName('dev') }),
        post(env, { name: uniqueName('qa') }),
        del(`${env}/development`),
        put(`${p()}/group-roles`, { mappings: [{ group: 'eng', role: 'admin' }] }),
        post(`${p()}/services`, newService()),
        del(s()),
      ];
      for (const attempt of attempts) {
        assertError(await as(frank, attempt), 403, 'FORBIDDEN', `${attempt.method} ${attempt.url}`);
      }

      const members = await asOwner({ url: `${p()}/members?limit=100` });
      const rows = members.json<{ data: Array<{ userId: string; environmentId: string | null }> }>()
        .data;
      const grantOf = (user: User) => rows.find((row) => row.userId === user.id);
      assert.notEqual(grantOf(frank)?.environmentId, null, 'frank is still limited');
      assert.equal(grantOf(users.admin)?.environmentId, null, 'the project-wide admin stays');
      assert.equal(grantOf(users.candidate), undefined, 'nobody was added');
      assert.equal((await asOwner({ url: `${p()}/environments/development` })).statusCode, 200);

      // What the grant is for still works: reading, and deploying to staging only.
      assert.equal((await as(frank, { url: p() })).statusCode, 200);
      assert.equal((await as(frank, { url: `${p()}/members` })).statusCode, 200);
      const deploy = (environment: string) =>
        post(`${s()}/deployments`, { environment, releaseId });
      assert.equal((await as(frank, deploy('staging'))).statusCode, 202);
      assertError(await as(frank, deploy('production')), 403, 'FORBIDDEN');
    });

    it('keeps a developer limited to staging from changing what every environment runs', async () => {
      const dave = users.scoped;
      const attempts: InjectOptions[] = [
        patch(s(), { runtime: { startCommand: 'node evil.js' } }),
        patch(s(), { gitUrl: 'https://github.com/acme/other.git' }),
        put(`${s()}/env`, { variables: { FEATURE: 'on' } }),
        postText(`${s()}/env/import`, 'FEATURE=on\n'),
        post(`${s()}/builds`, {}),
      ];
      for (const attempt of attempts) {
        assertError(await as(dave, attempt), 403, 'FORBIDDEN', `${attempt.method} ${attempt.url}`);
      }
      const service = await asOwner({ url: s() });
      assert.equal(
        service.json<{ runtime: { startCommand?: string } }>().runtime.startCommand,
        undefined,
      );
      for (const url of [s(), `${s()}/env`, `${s()}/builds`, `${s()}/releases`]) {
        assert.equal((await as(dave, { url })).statusCode, 200, url);
      }
    });

    it('lets nobody grant more than they hold: role, environment or lifetime', async () => {
      const add = (extra: Record<string, unknown>) =>
        post(`${p()}/members`, { email: users.candidate.email, role: 'developer', ...extra });
      const expiring = users.expiring;
      await candidate(undefined);
      assertError(await as(users.admin, add({ role: 'owner' })), 403, 'FORBIDDEN', 'owner');
      assertError(await as(expiring, add({})), 403, 'FORBIDDEN', 'a grant that never expires');
      assertError(await as(expiring, add({ expiresAt: inDays(20) })), 403, 'FORBIDDEN', 'later');
      const self = patch(`${p()}/members/${expiring.id}`, { role: 'admin', expiresAt: null });
      assertError(await as(expiring, self), 403, 'FORBIDDEN', 'lifting their own expiry');
      const mapping = put(`${p()}/group-roles`, { mappings: [{ group: 'eng', role: 'readonly' }] });
      assertError(await as(expiring, mapping), 403, 'FORBIDDEN', 'a mapping that never expires');

      const within = await as(expiring, add({ expiresAt: inDays(5) }));
      assert.equal(within.statusCode, 201, within.body);
      await candidate(undefined);
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
