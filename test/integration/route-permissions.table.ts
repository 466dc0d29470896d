/**
 * Who may call which route: the table the route walk (route-permissions.ts) proves. Every
 * route of the OpenAPI document needs an entry here; a new route without one fails the walk.
 * Each entry also says how an allowed caller makes a request that succeeds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Role } from '../../src/platform/db/schema.js';
import type { Scope } from '../../src/auth/auth.tables.js';
import type { IdentityTestApp } from '../support/identity.js';

export type Access =
  | { kind: 'public' }
  /** Any signed-in person, on their own account or data. */
  | { kind: 'user' }
  | { kind: 'instance-admin' }
  /** Members with at least `role`; API tokens need `scope`. */
  | { kind: 'project'; role: Role; scope: Scope };

export interface Req {
  url: string;
  payload?: unknown;
  contentType?: string;
}

export interface RouteCase {
  access: Access;
  ok: number;
  request(world: World, ctx: Context): Req | Promise<Req>;
  /** Succeeds once per world (a delete, a create of a fixed name): each success needs a fresh world. */
  once?: boolean;
  /** How a grant narrowed to one environment fares; see limitedOf for the default. */
  limited?: Limited;
}

/**
 * How a grant narrowed to the `staging` environment fares on a project route:
 * - read: as its role allows (reads reach every environment);
 * - project-wide: refused whatever its role, because the action reaches the whole project
 *   (members, settings, environments, services, variables, builds, shared secrets);
 * - environment: the route's own request acts in staging and is allowed as the role allows;
 *   `elsewhere` makes the same request in another environment, which is refused.
 */
export type Limited =
  | { kind: 'read' }
  | { kind: 'project-wide' }
  | { kind: 'environment'; elsewhere: RouteCase['request'] };

/** Reads stay allowed; every other route needs a project-wide grant unless it says otherwise. */
export function limitedOf(key: string, route: RouteCase): Limited {
  return route.limited ?? { kind: key.startsWith('GET ') ? 'read' : 'project-wide' };
}

const inEnvironment = (route: RouteCase, elsewhere: RouteCase['request']): RouteCase => ({
  ...route,
  limited: { kind: 'environment', elsewhere },
});
const projectWide = (route: RouteCase): RouteCase => ({
  ...route,
  limited: { kind: 'project-wide' },
});

export interface World {
  slug: string;
  projectId: string;
  serviceId: string;
  buildId: string;
  releaseId: string;
  /** A deployment in staging (the environment the limited members are narrowed to). */
  deploymentId: string;
  productionDeploymentId: string;
  rotationId: string;
}

export interface Caller {
  id: string;
  email: string;
  headers: Record<string, string>;
}

export interface Context {
  users: Record<
    | 'owner'
    | 'admin'
    | 'developer'
    | 'readonly'
    | 'target'
    | 'spare'
    | 'victim'
    | 'stagingAdmin'
    | 'stagingDeveloper',
    Caller
  >;
  /** The caller of this request (for 'user' routes: a fresh account). */
  caller: Caller;
  t: IdentityTestApp;
}

export const SECRET = 'API_KEY';
const project = (
  role: Role,
  scope: Scope,
  ok: number,
  request: RouteCase['request'],
  once = false,
): RouteCase => ({
  access: { kind: 'project', role, scope },
  ok,
  request,
  once,
});
const ONCE = true;
const user = (ok: number, request: RouteCase['request']): RouteCase => ({
  access: { kind: 'user' },
  ok,
  request,
});
const PUBLIC: RouteCase = { access: { kind: 'public' }, ok: 200, request: () => ({ url: '/' }) };

/**
 * Secret routes, the same ten in each scope; `shared` scopes need Admin where service scope
 * needs Developer. Project and service secrets reach every environment, so a grant narrowed
 * to one may only list them; environment secrets it may use in its own environment
 * (`elsewhere` names the same scope in another one).
 */
function secretRoutes(
  prefix: string,
  base: (w: World) => string,
  level: 'shared' | 'service',
  elsewhere?: (w: World) => string,
): Record<string, RouteCase> {
  const writer: Role = level === 'service' ? 'developer' : 'admin';
  const one = (w: World) => `${base(w)}/${SECRET}`;
  const routes: Record<string, RouteCase> = {
    [`GET ${prefix}`]: project('readonly', 'secrets', 200, (w) => ({ url: base(w) })),
    [`GET ${prefix}/{name}`]: project('readonly', 'secrets', 200, (w) => ({ url: one(w) })),
    [`PUT ${prefix}/{name}`]: project(writer, 'secrets', 200, (w) => ({
      url: one(w),
      payload: { value: 'v3' },
    })),
    [`DELETE ${prefix}/{name}`]: project(writer, 'secrets', 204, (w) => ({ url: one(w) }), ONCE),
    [`GET ${prefix}/{name}/value`]: projectWide(
      project(writer, 'secrets', 200, (w) => ({ url: `${one(w)}/value` })),
    ),
    [`GET ${prefix}/{name}/versions`]: project('readonly', 'secrets', 200, (w) => ({
      url: `${one(w)}/versions`,
    })),
    [`POST ${prefix}/{name}/restore`]: project(writer, 'secrets', 200, (w) => ({
      url: `${one(w)}/restore`,
      payload: { version: 1 },
    })),
    [`POST ${prefix}/{name}/destroy`]: project(
      'owner',
      'secrets',
      200,
      (w) => ({ url: `${one(w)}/destroy`, payload: { versions: [1] } }),
      ONCE,
    ),
    [`POST ${prefix}/{name}/rotate`]: project(
      writer,
      'secrets',
      202,
      (w) => ({ url: `${one(w)}/rotate`, payload: { generateBytes: 32 } }),
      ONCE,
    ),
    [`GET ${prefix}/{name}/rotations`]: project('readonly', 'secrets', 200, (w) => ({
      url: `${one(w)}/rotations`,
    })),
  };
  if (elsewhere === undefined) return routes;
  // Each request again, aimed at the same secret in another environment.
  return Object.fromEntries(
    Object.entries(routes).map(([key, route]) => [
      key,
      inEnvironment(route, async (w, ctx) => {
        const req = await route.request(w, ctx);
        return { ...req, url: req.url.replace(base(w), elsewhere(w)) };
      }),
    ]),
  );
}

export const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

const adminOnly = (ok: number, request: RouteCase['request']): RouteCase => ({
  access: { kind: 'instance-admin' },
  ok,
  request,
});

const sinkBody = () => ({
  name: `sink-${randomBytes(4).toString('hex')}`,
  format: 'webhook',
  url: 'https://github.com/acme/audit-hook',
});

/** A compliance sink of the caller's, or (when they may not make one) an id nothing has. */
async function sinkOf({ t, caller }: Context): Promise<string> {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/audit-sinks',
    headers: caller.headers,
    payload: sinkBody(),
  });
  return created.statusCode === 201 ? created.json<{ id: string }>().id : randomUUID();
}

/**
 * A pending invitation in the world's project, made by its owner for an address without an
 * account, or (when the project does not exist) an id nothing has.
 */
async function invitationIn(w: World, { t, users }: Context): Promise<string> {
  const email = `invitee-${randomBytes(6).toString('hex')}@example.com`;
  const base = `/v1/projects/${w.slug}`;
  const invited = await t.app.inject({
    method: 'POST',
    url: `${base}/members`,
    headers: users.owner.headers,
    payload: { email, role: 'readonly' },
  });
  if (invited.statusCode !== 201) return randomUUID();
  const listed = await t.app.inject({
    url: `${base}/invitations?limit=100`,
    headers: users.owner.headers,
  });
  const invitation = listed
    .json<{ data: Array<{ id: string; email: string }> }>()
    .data.find((row) => row.email === email);
  return invitation?.id ?? randomUUID();
}

/** Who may call what. Keep in step with src/access/permissions.ts and docs. */
export const ROUTES: Record<string, RouteCase> = {
  'POST /v1/auth/register': PUBLIC,
  'POST /v1/auth/verify': PUBLIC,
  'POST /v1/auth/login': PUBLIC,
  'POST /v1/auth/refresh': PUBLIC,
  'POST /v1/auth/session': PUBLIC,
  'POST /v1/auth/session/refresh': PUBLIC,
  'GET /v1/auth/oidc/login': PUBLIC,
  'GET /v1/auth/oidc/callback': PUBLIC,

  'POST /v1/auth/logout': user(204, () => ({ url: '/v1/auth/logout' })),
  'GET /v1/me': user(200, () => ({ url: '/v1/me' })),
  'GET /v1/me/sessions': user(200, () => ({ url: '/v1/me/sessions' })),
  'DELETE /v1/me/sessions/{id}': user(204, async (_w, { t, caller }) => {
    const other = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: caller.email, password: 'correct horse battery staple' },
    });
    const sessions = await t.app.inject({
      url: '/v1/me/sessions',
      headers: { authorization: `Bearer ${other.json<{ accessToken: string }>().accessToken}` },
    });
    const session = sessions
      .json<{ data: Array<{ id: string; isCurrent: boolean }> }>()
      .data.find((s) => s.isCurrent);
    return { url: `/v1/me/sessions/${session?.id ?? randomUUID()}` };
  }),
  'POST /v1/me/password': user(204, () => ({
    url: '/v1/me/password',
    payload: {
      currentPassword: 'correct horse battery staple',
      newPassword: 'another horse battery staple',
    },
  })),
  'POST /v1/me/tokens': user(201, () => ({
    url: '/v1/me/tokens',
    payload: { name: 'ci', scopes: ['read'], expiresAt: inDays(7) },
  })),
  'GET /v1/me/tokens': user(200, () => ({ url: '/v1/me/tokens' })),
  'DELETE /v1/me/tokens/{id}': user(204, async (_w, { t, caller }) => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/me/tokens',
      headers: caller.headers,
      payload: { name: 'x', scopes: ['read'], expiresAt: inDays(1) },
    });
    return { url: `/v1/me/tokens/${created.json<{ id: string }>().id}` };
  }),
  'POST /v1/projects': user(201, () => ({
    url: '/v1/projects',
    payload: { name: 'Made by a user', slug: `u-${randomBytes(4).toString('hex')}` },
  })),
  'GET /v1/projects': user(200, () => ({ url: '/v1/projects' })),

  'GET /v1/admin/users': {
    access: { kind: 'instance-admin' },
    ok: 200,
    request: () => ({ url: '/v1/admin/users' }),
  },
  'POST /v1/admin/users': {
    access: { kind: 'instance-admin' },
    ok: 201,
    request: () => ({
      url: '/v1/admin/users',
      payload: {
        email: `made-${randomUUID()}@example.com`,
        password: 'correct horse battery staple',
        name: 'Made by an admin',
      },
    }),
  },
  'PATCH /v1/admin/users/{id}': {
    access: { kind: 'instance-admin' },
    ok: 200,
    request: (_w, { users }) => ({
      url: `/v1/admin/users/${users.victim.id}`,
      payload: { disabled: false },
    }),
  },

  'GET /v1/projects/{project}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}`,
  })),
  'PATCH /v1/projects/{project}': project('admin', 'write', 200, (w) => ({
    url: `/v1/projects/${w.slug}`,
    payload: { name: 'Renamed' },
  })),
  'DELETE /v1/projects/{project}': project(
    'owner',
    'admin',
    204,
    (w) => ({ url: `/v1/projects/${w.slug}` }),
    ONCE,
  ),
  'GET /v1/projects/{project}/environments': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}/environments`,
  })),
  'POST /v1/projects/{project}/environments': project(
    'admin',
    'write',
    201,
    (w) => ({ url: `/v1/projects/${w.slug}/environments`, payload: { name: 'preview-1' } }),
    ONCE,
  ),
  'GET /v1/projects/{project}/environments/{env}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}/environments/qa`,
  })),
  'PATCH /v1/projects/{project}/environments/{env}': project(
    'admin',
    'write',
    200,
    (w) => ({ url: `/v1/projects/${w.slug}/environments/qa`, payload: { name: 'qa-2' } }),
    ONCE,
  ),
  'DELETE /v1/projects/{project}/environments/{env}': project(
    'admin',
    'write',
    204,
    (w) => ({ url: `/v1/projects/${w.slug}/environments/qa` }),
    ONCE,
  ),
  'GET /v1/projects/{project}/members': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}/members`,
  })),
  'POST /v1/projects/{project}/members': project(
    'admin',
    'admin',
    201,
    (w, { users }) => ({
      url: `/v1/projects/${w.slug}/members`,
      payload: { email: users.spare.email, role: 'developer' },
    }),
    ONCE,
  ),
  'PATCH /v1/projects/{project}/members/{userId}': project(
    'admin',
    'admin',
    200,
    (w, { users }) => ({
      url: `/v1/projects/${w.slug}/members/${users.target.id}`,
      payload: { role: 'developer' },
    }),
  ),
  'DELETE /v1/projects/{project}/members/{userId}': project(
    'admin',
    'admin',
    204,
    (w, { users }) => ({ url: `/v1/projects/${w.slug}/members/${users.target.id}` }),
    ONCE,
  ),
  'GET /v1/projects/{project}/invitations': projectWide(
    project('admin', 'admin', 200, (w) => ({ url: `/v1/projects/${w.slug}/invitations` })),
  ),
  'DELETE /v1/projects/{project}/invitations/{invitationId}': project(
    'admin',
    'admin',
    204,
    async (w, ctx) => ({
      url: `/v1/projects/${w.slug}/invitations/${await invitationIn(w, ctx)}`,
    }),
  ),
  'GET /v1/projects/{project}/group-roles': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}/group-roles`,
  })),
  'PUT /v1/projects/{project}/group-roles': project('admin', 'admin', 200, (w) => ({
    url: `/v1/projects/${w.slug}/group-roles`,
    payload: { mappings: [{ group: 'eng', role: 'developer' }] },
  })),

  'POST /v1/projects/{project}/services': project(
    'developer',
    'write',
    201,
    (w) => ({
      url: `/v1/projects/${w.slug}/services`,
      payload: { name: 'api', gitUrl: 'https://github.com/acme/api.git' },
    }),
    ONCE,
  ),
  'GET /v1/projects/{project}/services': project('readonly', 'read', 200, (w) => ({
    url: `/v1/projects/${w.slug}/services`,
  })),
  'GET /v1/services/{id}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}`,
  })),
  'PATCH /v1/services/{id}': project('developer', 'write', 200, (w) => ({
    url: `/v1/services/${w.serviceId}`,
    payload: { branch: 'develop' },
  })),
  'DELETE /v1/services/{id}': project(
    'admin',
    'write',
    204,
    (w) => ({ url: `/v1/services/${w.serviceId}` }),
    ONCE,
  ),
  'GET /v1/services/{id}/env': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/env`,
  })),
  'PUT /v1/services/{id}/env': project('developer', 'write', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/env`,
    payload: { variables: { GREETING: 'hi' } },
  })),
  'POST /v1/services/{id}/env/import': project('developer', 'write', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/env/import`,
    payload: 'GREETING=hi\n',
    contentType: 'text/plain',
  })),
  'POST /v1/services/{id}/builds': project('developer', 'deploy', 202, (w) => ({
    url: `/v1/services/${w.serviceId}/builds`,
    payload: {},
  })),
  'GET /v1/services/{id}/builds': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/builds`,
  })),
  'GET /v1/builds/{id}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/builds/${w.buildId}`,
  })),
  'GET /v1/builds/{id}/logs': project('readonly', 'read', 200, (w) => ({
    url: `/v1/builds/${w.buildId}/logs`,
  })),
  'GET /v1/services/{id}/releases': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/releases`,
  })),
  'GET /v1/releases/{id}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/releases/${w.releaseId}`,
  })),
  'POST /v1/services/{id}/deployments': inEnvironment(
    project('developer', 'deploy', 202, (w) => ({
      url: `/v1/services/${w.serviceId}/deployments`,
      payload: { environment: 'staging', releaseId: w.releaseId },
    })),
    (w) => ({
      url: `/v1/services/${w.serviceId}/deployments`,
      payload: { environment: 'production', releaseId: w.releaseId },
    }),
  ),
  'GET /v1/services/{id}/deployments': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/deployments`,
  })),
  'POST /v1/services/{id}/rollback': inEnvironment(
    project('developer', 'deploy', 202, (w) => ({
      url: `/v1/services/${w.serviceId}/rollback`,
      payload: { environment: 'staging', releaseId: w.releaseId },
    })),
    (w) => ({
      url: `/v1/services/${w.serviceId}/rollback`,
      payload: { environment: 'production', releaseId: w.releaseId },
    }),
  ),
  'GET /v1/services/{id}/status': project('readonly', 'read', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/status?environment=production`,
  })),
  'GET /v1/deployments/{id}': project('readonly', 'read', 200, (w) => ({
    url: `/v1/deployments/${w.deploymentId}`,
  })),
  // A workload's output is its environment's: a grant narrowed to another one cannot read it.
  'GET /v1/deployments/{id}/logs': inEnvironment(
    project('readonly', 'read', 200, (w) => ({ url: `/v1/deployments/${w.deploymentId}/logs` })),
    (w) => ({ url: `/v1/deployments/${w.productionDeploymentId}/logs` }),
  ),

  ...secretRoutes(
    '/v1/projects/{project}/secrets',
    (w) => `/v1/projects/${w.slug}/secrets`,
    'shared',
  ),
  ...secretRoutes(
    '/v1/projects/{project}/environments/{env}/secrets',
    (w) => `/v1/projects/${w.slug}/environments/staging/secrets`,
    'shared',
    (w) => `/v1/projects/${w.slug}/environments/production/secrets`,
  ),
  ...secretRoutes(
    '/v1/services/{id}/secrets',
    (w) => `/v1/services/${w.serviceId}/secrets`,
    'service',
  ),
  'GET /v1/secret-rotations/{id}': project('readonly', 'secrets', 200, (w) => ({
    url: `/v1/secret-rotations/${w.rotationId}`,
  })),
  'GET /v1/services/{id}/secret-rotations': project('readonly', 'secrets', 200, (w) => ({
    url: `/v1/services/${w.serviceId}/secret-rotations`,
  })),
  'GET /v1/audit-events': user(200, () => ({ url: '/v1/audit-events' })),
  'GET /v1/audit-events/export': user(200, () => ({
    url: `/v1/audit-events/export?from=${new Date(Date.now() - 3_600_000).toISOString()}&to=${new Date().toISOString()}`,
  })),
  'GET /v1/audit-events/verify': adminOnly(200, () => ({ url: '/v1/audit-events/verify' })),
  'POST /v1/audit-sinks': adminOnly(201, () => ({ url: '/v1/audit-sinks', payload: sinkBody() })),
  'GET /v1/audit-sinks': adminOnly(200, () => ({ url: '/v1/audit-sinks' })),
  'GET /v1/audit-sinks/{id}': adminOnly(200, async (_w, ctx) => ({
    url: `/v1/audit-sinks/${await sinkOf(ctx)}`,
  })),
  'PATCH /v1/audit-sinks/{id}': adminOnly(200, async (_w, ctx) => ({
    url: `/v1/audit-sinks/${await sinkOf(ctx)}`,
    payload: { status: 'paused' },
  })),
  'DELETE /v1/audit-sinks/{id}': adminOnly(204, async (_w, ctx) => ({
    url: `/v1/audit-sinks/${await sinkOf(ctx)}`,
  })),
  'POST /v1/audit-sinks/{id}/redeliver': adminOnly(200, async (_w, ctx) => ({
    url: `/v1/audit-sinks/${await sinkOf(ctx)}/redeliver`,
    payload: {},
  })),
};
