/**
 * Walks every route of the OpenAPI document and calls it as each kind of caller, proving
 * the allowed set matches the permission table below exactly. A route missing from the
 * table fails the test: whoever adds a route states who may call it, and the test checks
 * the code agrees. Also proves no request body takes fields its schema does not name.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Role } from '../../src/platform/db/schema.js';
import type { Scope } from '../../src/auth/auth.tables.js';
import { BUILD_RUN } from '../../src/builds/build.jobs.js';
import { DEPLOYMENT_RECONCILE } from '../../src/deployments/deployment.jobs.js';
import { SECRET_ROTATE } from '../../src/secrets/rotation.jobs.js';
import type { Backend } from '../support/database.js';
import { createIdentityTestApp, newUser, type IdentityTestApp } from '../support/identity.js';
import {
  ROUTES,
  SECRET,
  inDays,
  limitedOf,
  type Caller,
  type Context,
  type RouteCase,
  type World,
} from './route-permissions.table.js';

const PROJECT_ROLES: Role[] = ['readonly', 'developer', 'admin', 'owner'];
const RANK: Record<Role, number> = { readonly: 0, developer: 1, admin: 2, owner: 3 };
const SCOPES: Scope[] = ['read', 'deploy', 'write', 'secrets', 'admin'];
// Fields someone might hope to set through a body; the first one a schema does not name is sent.
const MASS_ASSIGNMENT = [
  'isInstanceAdmin',
  'role',
  'ownerId',
  'userId',
  'status',
  'active',
  'createdBy',
  'id',
];

interface Operation {
  key: string;
  method: string;
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}
interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
}

function operationsOf(t: IdentityTestApp): Operation[] {
  const doc = t.app.swagger() as unknown as { paths: Record<string, Record<string, Operation>> };
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      ...operation,
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
    })),
  );
}

/** Every object schema that names properties must refuse others; returns the paths that do not. */
function openObjects(schema: JsonSchema | undefined, at = ''): string[] {
  if (schema === undefined) return [];
  const nested = [
    ...Object.entries(schema.properties ?? {}).flatMap(([name, inner]) =>
      openObjects(inner, `${at}/${name}`),
    ),
    ...openObjects(schema.items, `${at}[]`),
    ...[...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])].flatMap(
      (inner) => openObjects(inner, at),
    ),
    ...(typeof schema.additionalProperties === 'object'
      ? openObjects(schema.additionalProperties, `${at}/*`)
      : []),
  ];
  const isOpen = schema.properties !== undefined && schema.additionalProperties !== false;
  return isOpen ? [at === '' ? '/' : at, ...nested] : nested;
}

/** The whole walk on one backend; each backend has its own test file so both run in parallel. */
export function describeRoutePermissions(backend: Backend): void {
  describe(`every route × every kind of caller on ${backend}`, () => {
    let t: IdentityTestApp;
    let instanceAdmin: Caller;
    let ctxUsers: Context['users'];
    let nonMember: Caller;
    let otherProjectMember: Caller;
    /** Only read: every caller sees the same. */
    let shared: World;
    /** Changed by requests that may repeat (renames, new versions, queued work). */
    let scratch: World;
    const onlyScope = new Map<Scope, Caller>();
    const allButScope = new Map<Scope, Caller>();

    const caller = (u: { id: string; email: string; headers: Record<string, string> }): Caller => ({
      id: u.id,
      email: u.email,
      headers: u.headers,
    });

    async function tokenCaller(owner: Caller, scopes: Scope[]): Promise<Caller> {
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/me/tokens',
        headers: owner.headers,
        payload: { name: scopes.join('+'), scopes, expiresAt: inDays(1) },
      });
      assert.equal(created.statusCode, 201, created.body);
      return {
        ...owner,
        headers: { authorization: `Bearer ${created.json<{ token: string }>().token}` },
      };
    }

    /** A project with members of every role, a service with a build, a release, a deployment and secrets. */
    async function createWorld(options: { secrets: boolean }): Promise<World> {
      const slug = `w-${randomBytes(5).toString('hex')}`;
      const { owner } = ctxUsers;
      const db = t.deps.database.db;
      // Rows straight into the database: hundreds of worlds must be cheap.
      const { id: projectId } = await db
        .insertInto('projects')
        .values({ slug, name: slug, created_by: owner.id })
        .returning('id')
        .executeTakeFirstOrThrow();
      const environments = await db
        .insertInto('environments')
        .values(
          ['development', 'staging', 'production', 'qa'].map((name) => ({
            project_id: projectId,
            name,
          })),
        )
        .returning(['id', 'name'])
        .execute();
      const environmentId = (name: string) => {
        const found = environments.find((environment) => environment.name === name);
        assert.ok(found, name);
        return found.id;
      };
      const members = [
        ['owner', owner],
        ['admin', ctxUsers.admin],
        ['developer', ctxUsers.developer],
        ['readonly', ctxUsers.readonly],
        ['readonly', ctxUsers.target],
      ] as const;
      const staging = environmentId('staging');
      await db
        .insertInto('project_members')
        .values([
          ...members.map(([role, member]) => ({ project_id: projectId, user_id: member.id, role })),
          // Grants narrowed to one environment, as a security review found them abused.
          ...(
            [
              ['admin', ctxUsers.stagingAdmin],
              ['developer', ctxUsers.stagingDeveloper],
            ] as const
          ).map(([role, member]) => ({
            project_id: projectId,
            user_id: member.id,
            role,
            environment_id: staging,
          })),
        ])
        .execute();
      const { id: serviceId } = await db
        .insertInto('services')
        .values({
          project_id: projectId,
          name: 'web',
          git_url: 'https://github.com/acme/web.git',
          branch: 'main',
          build: '{}',
          runtime: JSON.stringify({ healthCheckPath: '/healthz', instances: 1 }),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const sha = randomBytes(20).toString('hex');
      const build = await db
        .insertInto('builds')
        .values({ service_id: serviceId, ref: 'main', status: 'succeeded', commit_sha: sha })
        .returning('id')
        .executeTakeFirstOrThrow();
      const release = await db
        .insertInto('releases')
        .values({
          service_id: serviceId,
          build_id: build.id,
          version: 1,
          commit_sha: sha,
          digest: `sha256:${randomBytes(32).toString('hex')}`,
          artifact_path: '/tmp/artifact',
          kind: 'node',
          start_command: JSON.stringify({ command: 'node', args: ['server.js'] }),
          config_snapshot: '{}',
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const [deployment, productionDeployment] = await db
        .insertInto('deployments')
        .values(
          ['staging', 'production'].map((name) => ({
            service_id: serviceId,
            environment_id: environmentId(name),
            release_id: release.id,
            replicas: 1,
            status: 'failed' as const,
          })),
        )
        .returning('id')
        .execute();
      assert.ok(deployment && productionDeployment);
      let rotationId: string = randomUUID();
      if (options.secrets) {
        for (const base of [
          `/v1/projects/${slug}/secrets`,
          `/v1/projects/${slug}/environments/staging/secrets`,
          `/v1/services/${serviceId}/secrets`,
        ]) {
          for (const value of ['v1', 'v2']) {
            const put = await t.app.inject({
              method: 'PUT',
              url: `${base}/${SECRET}`,
              headers: owner.headers,
              payload: { value },
            });
            assert.equal(put.statusCode, 200, put.body);
          }
        }
        await t.app.inject({
          method: 'PUT',
          url: `/v1/services/${serviceId}/secrets/OTHER_KEY`,
          headers: owner.headers,
          payload: { value: 'x' },
        });
        const rotated = await t.app.inject({
          method: 'POST',
          url: `/v1/services/${serviceId}/secrets/OTHER_KEY/rotate`,
          headers: owner.headers,
          payload: { generateBytes: 16 },
        });
        assert.equal(rotated.statusCode, 202, rotated.body);
        rotationId = rotated.json<{ id: string }>().id;
      }
      return {
        slug,
        projectId,
        serviceId,
        buildId: build.id,
        releaseId: release.id,
        deploymentId: deployment.id,
        productionDeploymentId: productionDeployment.id,
        rotationId,
      };
    }

    /** A world of ids that exist nowhere: what "not found" looks like. */
    const ghost = (): World => ({
      slug: `ghost-${randomBytes(4).toString('hex')}`,
      projectId: randomUUID(),
      serviceId: randomUUID(),
      buildId: randomUUID(),
      releaseId: randomUUID(),
      deploymentId: randomUUID(),
      productionDeploymentId: randomUUID(),
      rotationId: randomUUID(),
    });

    /**
     * Makes the route's request for `who` (who also prepares anything it needs), sent with
     * `who`'s credentials unless `options.headers` says otherwise.
     */
    async function call(
      key: string,
      route: RouteCase,
      world: World,
      who: Caller,
      options: { extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
    ) {
      const method = key.split(' ')[0] as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
      const req = await route.request(world, { users: ctxUsers, caller: who, t });
      const isJson = req.contentType === undefined;
      const payload =
        options.extra === undefined
          ? req.payload
          : { ...(req.payload as object), ...options.extra };
      const headers: Record<string, string> = { ...(options.headers ?? who.headers) };
      if (payload !== undefined)
        headers['content-type'] = isJson ? 'application/json' : (req.contentType ?? '');
      return t.app.inject({
        method,
        url: req.url,
        headers,
        ...(payload === undefined
          ? {}
          : { payload: isJson ? JSON.stringify(payload) : String(payload) }),
      });
    }

    before(async () => {
      t = await createIdentityTestApp(backend);
      // Routes that start work enqueue jobs: the queue's tables must exist (no worker runs them).
      await t.deps.queue.start();
      await t.deps.queue.define(BUILD_RUN);
      await t.deps.queue.define(DEPLOYMENT_RECONCILE);
      await t.deps.queue.define(SECRET_ROTATE);
      instanceAdmin = caller(await newUser(t.app, 'instance-admin'));
      const names = [
        'owner',
        'admin',
        'developer',
        'readonly',
        'target',
        'spare',
        'victim',
        'stagingAdmin',
        'stagingDeveloper',
      ] as const;
      const made = await Promise.all(
        names.map(async (name) => [name, caller(await newUser(t.app, name))] as const),
      );
      ctxUsers = Object.fromEntries(made) as Context['users'];
      nonMember = caller(await newUser(t.app, 'outsider'));
      otherProjectMember = caller(await newUser(t.app, 'elsewhere'));
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: otherProjectMember.headers,
        payload: { name: 'Elsewhere', slug: `elsewhere-${Date.now()}` },
      });
      shared = await createWorld({ secrets: true });
      scratch = await createWorld({ secrets: true });
      for (const scope of SCOPES) {
        onlyScope.set(scope, await tokenCaller(ctxUsers.owner, [scope]));
        allButScope.set(
          scope,
          await tokenCaller(
            ctxUsers.owner,
            SCOPES.filter((s) => s !== scope),
          ),
        );
      }
    });
    after(async () => {
      await t.deps.queue.stop(2_000);
      await t.close();
    });

    it('has a permission entry for every route, and no entry for a route that is gone', () => {
      const keys = operationsOf(t).map((operation) => operation.key);
      const missing = keys.filter((key) => !(key in ROUTES));
      const stale = Object.keys(ROUTES).filter((key) => !keys.includes(key));
      assert.deepEqual(
        missing,
        [],
        `routes without an entry in ROUTES (state who may call them): ${missing.join(', ')}`,
      );
      assert.deepEqual(stale, [], `entries for routes that no longer exist: ${stale.join(', ')}`);
    });

    it('refuses every route that is not public without credentials', async () => {
      for (const [key, route] of Object.entries(ROUTES)) {
        if (route.access.kind === 'public') continue;
        const response = await call(key, route, shared, ctxUsers.spare, { headers: {} });
        assert.equal(response.statusCode, 401, `${key}: ${response.body}`);
        assert.equal(response.json().error.code, 'AUTHENTICATION_REQUIRED', key);
      }
    });

    it('lets each project role do exactly what the table says, and answers outsiders as if nothing existed', async () => {
      const checked: string[] = [];
      for (const [key, route] of Object.entries(ROUTES)) {
        const { access } = route;
        if (access.kind !== 'project') continue;
        const isRead = key.startsWith('GET ');
        const needsSecrets = key.includes('secret');
        const missing = await call(key, route, ghost(), ctxUsers.owner);
        assert.equal(missing.statusCode, 404, `${key} on ids that do not exist: ${missing.body}`);

        for (const outsider of [nonMember, otherProjectMember]) {
          const response = await call(key, route, shared, outsider);
          assert.equal(response.statusCode, 404, `${key} as an outsider: ${response.body}`);
          assert.equal(
            response.json().error.code,
            missing.json().error.code,
            `${key}: same code as a missing id`,
          );
          assert.equal(
            response.json().error.message,
            missing.json().error.message,
            `${key}: same message as a missing id`,
          );
        }
        for (const role of PROJECT_ROLES) {
          const isAllowed = RANK[role] >= RANK[access.role];
          const world =
            !isAllowed || isRead
              ? shared
              : route.once === true
                ? await createWorld({ secrets: needsSecrets })
                : scratch;
          const response = await call(key, route, world, ctxUsers[role]);
          if (isAllowed) {
            assert.equal(response.statusCode, route.ok, `${key} as ${role}: ${response.body}`);
          } else {
            assert.equal(
              response.statusCode,
              403,
              `${key} as ${role} must be refused: ${response.body}`,
            );
            assert.equal(response.json().error.code, 'FORBIDDEN', key);
          }
        }
        checked.push(key);
      }
      assert.ok(checked.length > 50, `checked ${checked.length} project routes`);
    });

    it('lets grants narrowed to staging act only there, and nothing that reaches the whole project', async () => {
      const limitedRoles = [
        ['admin', ctxUsers.stagingAdmin],
        ['developer', ctxUsers.stagingDeveloper],
      ] as const;
      const refused = (response: { statusCode: number; body: string }, what: string) => {
        assert.equal(response.statusCode, 403, `${what} must be refused: ${response.body}`);
        assert.equal(JSON.parse(response.body).error.code, 'FORBIDDEN', what);
      };
      let checked = 0;
      for (const [key, route] of Object.entries(ROUTES)) {
        const { access } = route;
        if (access.kind !== 'project') continue;
        const limited = limitedOf(key, route);
        for (const [role, who] of limitedRoles) {
          const what = `${key} as ${role}@staging`;
          const isAllowed = limited.kind !== 'project-wide' && RANK[role] >= RANK[access.role];
          if (limited.kind === 'environment') {
            const elsewhere = { ...route, request: limited.elsewhere };
            refused(await call(key, elsewhere, shared, who), `${what} in production`);
          }
          if (!isAllowed) {
            refused(await call(key, route, shared, who), what);
            continue;
          }
          const world = key.startsWith('GET ')
            ? shared
            : route.once === true
              ? await createWorld({ secrets: key.includes('secret') })
              : scratch;
          const response = await call(key, route, world, who);
          assert.equal(response.statusCode, route.ok, `${what}: ${response.body}`);
          checked += 1;
        }
      }
      assert.ok(checked > 20, `checked ${checked} allowed calls`);
    });

    it('limits API tokens to their scopes on every project route', async () => {
      for (const [key, route] of Object.entries(ROUTES)) {
        const { access } = route;
        if (access.kind !== 'project') continue;
        const world = key.startsWith('GET ')
          ? shared
          : route.once === true
            ? await createWorld({ secrets: key.includes('secret') })
            : scratch;
        const withScope = await call(key, route, world, onlyScope.get(access.scope) as Caller);
        assert.equal(
          withScope.statusCode,
          route.ok,
          `${key} with only the ${access.scope} scope: ${withScope.body}`,
        );
        const without = await call(key, route, shared, allButScope.get(access.scope) as Caller);
        assert.equal(
          without.statusCode,
          403,
          `${key} with every scope but ${access.scope}: ${without.body}`,
        );
      }
    });

    it('lets any signed-in person use their own account routes, and only instance admins administer', async () => {
      for (const [key, route] of Object.entries(ROUTES)) {
        if (route.access.kind === 'user') {
          for (let n = 0; n < 2; n++) {
            const fresh = caller(await newUser(t.app));
            const response = await call(key, route, shared, fresh);
            assert.equal(response.statusCode, route.ok, `${key}: ${response.body}`);
          }
        }
        if (route.access.kind === 'instance-admin') {
          for (const who of [...Object.values(ctxUsers), nonMember, otherProjectMember]) {
            const response = await call(key, route, shared, who);
            assert.equal(response.statusCode, 403, `${key} as a non-admin: ${response.body}`);
          }
          const response = await call(key, route, shared, instanceAdmin);
          assert.equal(
            response.statusCode,
            route.ok,
            `${key} as the instance admin: ${response.body}`,
          );
        }
      }
    });

    it('refuses request bodies with fields their schema does not name, on every route', async () => {
      const operations = operationsOf(t).filter((operation) => operation.requestBody !== undefined);
      const open: string[] = [];
      let sent = 0;
      for (const operation of operations) {
        const schema = operation.requestBody?.content?.['application/json']?.schema;
        if (schema?.type !== 'object') continue; // text bodies (a .env file) have no fields
        open.push(...openObjects(schema).map((path) => `${operation.key} ${path}`));
        const route = ROUTES[operation.key];
        if (route === undefined || route.access.kind === 'public') continue;
        const field =
          MASS_ASSIGNMENT.find((name) => !(name in (schema.properties ?? {}))) ?? 'unexpected';
        const who =
          route.access.kind === 'instance-admin'
            ? instanceAdmin
            : route.access.kind === 'user'
              ? ctxUsers.spare
              : ctxUsers.owner;
        const response = await call(operation.key, route, shared, who, {
          extra: { [field]: true },
        });
        assert.equal(
          response.statusCode,
          400,
          `${operation.key} with "${field}": ${response.body}`,
        );
        assert.equal(response.json().error.code, 'VALIDATION_FAILED');
        sent += 1;
      }
      for (const [url, payload] of [
        [
          '/v1/auth/register',
          {
            email: 'x@example.com',
            password: 'long enough password',
            name: 'X',
            isInstanceAdmin: true,
          },
        ],
        ['/v1/auth/login', { email: 'x@example.com', password: 'whatever', role: 'owner' }],
        ['/v1/auth/refresh', { refreshToken: 'syr_x', userId: randomUUID() }],
        ['/v1/auth/verify', { token: 'syv_x', email: 'x@example.com' }],
        ['/v1/auth/session', { email: 'x@example.com', password: 'whatever', status: 'active' }],
      ] as const) {
        const response = await t.app.inject({ method: 'POST', url, payload });
        assert.equal(response.statusCode, 400, `${url}: ${response.body}`);
      }
      assert.deepEqual(open, [], 'object schemas that accept unnamed fields');
      assert.ok(sent >= 25, `sent ${sent} bodies`);
    });
  });
}
