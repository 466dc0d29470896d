import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KeyRing } from '../auth/keys.js';
import { verifyAccessToken, type TokenSettings } from '../auth/tokens.js';
import { toAppError } from '../platform/http/error-handler.js';
import { isAppError } from '../platform/errors.js';
import { openAuditScope, runInAuditScope, type AuditScope } from './audit-context.js';
import { actorOf, isProjectRole } from './audit-actor.js';
import { ANONYMOUS_ACTOR, buildRecord, type Actor, type AuditEventInput } from './audit-event.js';
import type { AuditRecorder } from './audit-recorder.js';
import type { RouteScope, RouteTarget } from './audit.repository.js';
import type { Outcome } from './audit.tables.js';

/** Finds the project (and environment) a request's URL names; see findRouteScope. */
export type FindRouteScope = (target: RouteTarget) => Promise<RouteScope | undefined>;

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

function outcomeOf(status: number): Outcome {
  if (status === 401 || status === 403) return 'denied';
  return status >= 400 ? 'failure' : 'success';
}

/**
 * The request-level audit hooks, installed once at the root so they cover every route:
 *
 * - onRequest opens the request's audit scope (request id, client address, user agent) and
 *   runs the rest of the request inside it;
 * - preValidation (after authentication) names the actor;
 * - onError keeps the error's code (and the role a 403 names);
 * - onResponse makes sure the request left exactly one event of its own: a change that
 *   recorded one in its transaction and succeeded needs nothing more; one that failed gets a
 *   failure event under the same id (stored only if its transaction rolled back); a
 *   state-changing request, or a denied one, that recorded nothing gets a request event.
 */
export function installAuditHooks(
  app: FastifyInstance,
  deps: {
    recorder: AuditRecorder;
    keys: KeyRing;
    tokens: TokenSettings;
    findScope: FindRouteScope;
  },
): void {
  const scopes = new WeakMap<FastifyRequest, AuditScope>();

  app.addHook('onRequest', (request, _reply, done) => {
    const userAgent = request.headers['user-agent'];
    const scope = openAuditScope(
      deps.recorder,
      {
        requestId: request.id,
        clientIp: request.ip,
        userAgent: typeof userAgent === 'string' ? userAgent : null,
      },
      ANONYMOUS_ACTOR,
    );
    scopes.set(request, scope);
    runInAuditScope(scope, done);
  });

  app.addHook('preValidation', async (request) => {
    const scope = scopes.get(request);
    if (scope !== undefined && request.principal !== undefined)
      scope.actor = actorOf(request.principal);
  });

  app.addHook('onError', async (request, _reply, error) => {
    const scope = scopes.get(request);
    if (scope === undefined) return;
    const appError = isAppError(error) ? error : toAppError(error);
    const details = appError?.details as { role?: unknown } | undefined;
    scope.error = {
      code: appError?.code ?? 'INTERNAL',
      ...(typeof details?.role === 'string' ? { role: details.role } : {}),
    };
  });

  // Placing the event in its project takes a query. It is made before the answer goes out (only
  // for requests that will need an event of their own), so that onResponse, which queues the
  // event, need not wait for the database after the client has its answer.
  const places = new WeakMap<FastifyRequest, RouteScope>();
  app.addHook('onSend', async (request, reply, payload) => {
    const scope = scopes.get(request);
    if (scope === undefined || !needsRequestEvent(request, reply.statusCode, scope)) return payload;
    const place = await placeRequest(request, deps.findScope);
    if (place !== undefined) places.set(request, place);
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    const scope = scopes.get(request);
    if (scope === undefined) return;
    const input = await requestEventFor(request, reply, scope, {
      ...deps,
      place: places.get(request),
    });
    if (input === undefined) return;
    const record = buildRecord(input.event, {
      actor: input.actor,
      facts: scope.facts,
      id: scope.primaryId,
    });
    scope.hasPrimary = true;
    deps.recorder.enqueue(record);
  });
}

async function requestEventFor(
  request: FastifyRequest,
  reply: FastifyReply,
  scope: AuditScope,
  deps: { keys: KeyRing; tokens: TokenSettings; place: RouteScope | undefined },
): Promise<{ event: AuditEventInput; actor: Actor } | undefined> {
  const status = reply.statusCode;
  const outcome = outcomeOf(status);
  const route = request.routeOptions.url;
  const details = {
    method: request.method,
    route: route ?? null,
    status,
    ...(scope.error === undefined ? {} : { errorCode: scope.error.code }),
  };

  if (scope.hasPrimary) {
    const tentative = scope.tentativeEvent;
    if (!scope.isPrimaryTentative || tentative === undefined || status < 400) return undefined;
    return {
      event: { ...tentative, outcome, diff: null, details: { ...tentative.details, ...details } },
      actor: scope.actor,
    };
  }

  if (!needsRequestEvent(request, status, scope)) return undefined;
  const role = scope.error?.role;
  const actor = scope.actor.type === 'anonymous' ? await claimedActor(request, deps) : scope.actor;
  return {
    event: {
      action: `${request.method} ${route ?? 'unmatched'}`,
      outcome,
      ...(deps.place === undefined
        ? {}
        : { projectId: deps.place.projectId, environmentId: deps.place.environmentId }),
      ...(role !== undefined && isProjectRole(role) ? { actorRole: role } : {}),
      details: {
        ...details,
        params: request.params ?? null,
        ...(actor.type !== 'anonymous' && scope.actor.type === 'anonymous'
          ? { authenticated: false }
          : {}),
      },
    },
    actor,
  };
}

/**
 * Who a request that never authenticated says it is: the subject of a validly signed access
 * token (the signature is checked offline; revocation is not). It names the caller of a
 * request that failed because the database could not confirm the session, or that used a
 * revoked token; the event marks it `authenticated: false`.
 */
async function claimedActor(
  request: FastifyRequest,
  deps: { keys: KeyRing; tokens: TokenSettings },
): Promise<Actor> {
  const match = BEARER.exec(request.headers.authorization ?? '');
  if (match?.[1] === undefined || match[1].split('.').length !== 3) return ANONYMOUS_ACTOR;
  try {
    const claims = await verifyAccessToken(deps.keys, deps.tokens, match[1]);
    return {
      type: 'user',
      id: claims.userId,
      tokenId: null,
      role: claims.isInstanceAdmin ? 'instance_admin' : null,
    };
  } catch {
    return ANONYMOUS_ACTOR;
  }
}

// Resource routes whose `:id` places the request in a project.
const ID_ROUTES: ReadonlyArray<
  [prefix: string, kind: 'service' | 'build' | 'release' | 'deployment']
> = [
  ['/v1/services/:id', 'service'],
  ['/v1/builds/:id', 'build'],
  ['/v1/releases/:id', 'release'],
  ['/v1/deployments/:id', 'deployment'],
];

// A lookup slower than this leaves the event without a project rather than hold it back.
const SCOPE_LOOKUP_TIMEOUT_MS = 1_000;

/** What the request's URL names: a project (and environment), or a resource by id. */
export function routeTargetOf(route: string | undefined, params: unknown): RouteTarget | undefined {
  if (route === undefined || typeof params !== 'object' || params === null) return undefined;
  const named = params as Record<string, unknown>;
  const project = named['project'];
  if (typeof project === 'string' && route.startsWith('/v1/projects/:project')) {
    const env = named['env'];
    return { kind: 'project', project, environment: typeof env === 'string' ? env : undefined };
  }
  const id = named['id'];
  if (typeof id !== 'string') return undefined;
  for (const [prefix, kind] of ID_ROUTES)
    if (route === prefix || route.startsWith(`${prefix}/`)) return { kind, id };
  return undefined;
}

/**
 * The project and environment a request event belongs to, from its URL, so that the
 * project's Owners and Admins see it. It is looked up after the answer was sent and never
 * changes it; the event is read only by that project's Owners and Admins (and instance
 * admins), so the caller learns nothing. A failed or slow lookup leaves the event unplaced.
 */
async function placeRequest(
  request: FastifyRequest,
  findScope: FindRouteScope,
): Promise<RouteScope | undefined> {
  const target = routeTargetOf(request.routeOptions.url, request.params);
  if (target === undefined) return undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      findScope(target),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), SCOPE_LOOKUP_TIMEOUT_MS);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** True when a request with no event of its own needs one: a change, or a denied request. */
function needsRequestEvent(request: FastifyRequest, status: number, scope: AuditScope): boolean {
  if (scope.hasPrimary) return false;
  const isChange = !READ_METHODS.has(request.method) && request.routeOptions.url !== undefined;
  return isChange || outcomeOf(status) === 'denied';
}
