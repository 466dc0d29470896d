import { randomUUID } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Dependencies } from './dependencies.js';
import {
  handleClientError,
  handleFrameworkError,
  installErrorHandling,
} from './http/error-handler.js';
import { endEventStreamsOnClose } from './http/sse.js';
import { refuseWhileClosing, wasRefusedWhileClosing } from './http/closing.js';
import { helmetHeaders, installSecurityHeaders } from './http/security-headers.js';
import { cachingSerializerFactory, createValidatorCompiler } from './http/compilers.js';
import { ErrorEnvelope } from './http/schemas.js';
import { authenticationHook } from '../auth/auth.hook.js';
import {
  registerBrowserSupport,
  registerIdentityRoutes,
  registerPublicIdentityRoutes,
} from '../auth/identity.routes.js';
import { registerProjectRoutes } from '../projects/project.routes.js';
import { registerServiceRoutes } from '../services/service.routes.js';
import { registerBuildRoutes } from '../builds/build.routes.js';
import { registerDeploymentRoutes } from '../deployments/deployment.routes.js';
import { registerReleaseRoutes } from '../releases/release.routes.js';
import { registerSecretRoutes } from '../secrets/secret.routes.js';
import { installAuditHooks } from '../audit/audit-http.js';
import { registerAuditRoutes } from '../audit/audit.routes.js';

export type AppInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;
export type AppDeps = Dependencies;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Builds the HTTP API from its dependencies. It never listens; callers decide that. */
export async function buildApp(deps: Dependencies): Promise<AppInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Our onResponse hook logs each request once, with route and actor.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.api.bodyLimitBytes,
    requestTimeout: config.api.requestTimeoutMs,
    connectionTimeout: config.api.requestTimeoutMs * 2,
    keepAliveTimeout: 72_000,
    // refuseWhileClosing answers instead, in our envelope.
    return503OnClosing: false,
    trustProxy: false,
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    schemaController: { compilersFactory: { buildSerializer: cachingSerializerFactory() } },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorateRequest('principal', undefined);
  app.addSchema(ErrorEnvelope);
  installErrorHandling(app);
  endEventStreamsOnClose(app);
  installRequestHooks(app, deps);
  installAuditHooks(app, {
    recorder: deps.audit.recorder,
    keys: deps.keys,
    tokens: config.auth,
    findScope: deps.audit.findRouteScope,
  });

  installSecurityHeaders(app, await helmetHeaders({ contentSecurityPolicy: false }));
  await registerBrowserSupport(app, config);
  refuseWhileClosing(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Switchyard API',
        version: '1.0.0',
        description: 'Push code from git; get a running, routed service.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setValidatorCompiler(createValidatorCompiler());
  registerOperationalRoutes(app, deps);
  // Worker processes answer probes and metrics only; the API lives in api and all roles.
  if (config.process.role === 'worker') return app;
  await app.register(
    async (v1) => {
      const api = v1.withTypeProvider<TypeBoxTypeProvider>();
      await api.register(async (open) =>
        registerPublicIdentityRoutes(open.withTypeProvider<TypeBoxTypeProvider>(), deps),
      );
      await api.register(async (secured) => {
        secured.addHook('onRequest', authenticationHook(deps.domain.auth));
        const typed = secured.withTypeProvider<TypeBoxTypeProvider>();
        registerIdentityRoutes(typed, deps);
        registerProjectRoutes(typed, deps);
        registerServiceRoutes(typed, deps);
        registerBuildRoutes(typed, deps);
        registerReleaseRoutes(typed, deps);
        registerDeploymentRoutes(typed, deps);
        registerSecretRoutes(typed, deps);
        registerAuditRoutes(typed, deps);
      });
    },
    { prefix: '/v1' },
  );
  return app;
}

function installRequestHooks(app: AppInstance, deps: Dependencies): void {
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  // Finding a histogram's child by its labels hashes them; keep each one found. Methods,
  // routes and statuses are few, so the map stays small.
  const durations = new Map<string, ReturnType<typeof deps.metrics.httpDuration.labels>>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const key = `${request.method} ${status} ${route}`;
    let duration = durations.get(key);
    if (duration === undefined) {
      duration = deps.metrics.httpDuration.labels(request.method, route, String(status));
      durations.set(key, duration);
    }
    duration.observe(reply.elapsedTime / 1000);
    const fields = {
      method: request.method,
      route,
      status,
      durationMs: Math.round(reply.elapsedTime),
    };
    // A request shed while closing was never handled; shedding is expected, not a warning.
    if (wasRefusedWhileClosing(request)) request.log.info(fields, 'request refused: shutting down');
    else request.log[status >= 500 ? 'warn' : 'info'](fields, 'request completed');
    done();
  });
}

function registerOperationalRoutes(app: AppInstance, deps: Dependencies): void {
  const hide = { hide: true };
  // Probes and scrapes come every few seconds; their access log would drown the rest.
  const quiet = { logLevel: 'warn' as const };
  app.get(
    '/healthz',
    {
      ...quiet,
      schema: { ...hide, response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    },
    async () => ({
      status: 'ok' as const,
    }),
  );

  app.get('/readyz', { ...quiet, schema: hide }, async (_request, reply) => {
    const checks = await deps.readiness();
    const isReady = Object.values(checks).every((check) => check.ok);
    void reply.status(isReady ? 200 : 503);
    return { status: isReady ? 'ready' : 'unavailable', checks };
  });

  app.get('/metrics', { ...quiet, schema: hide }, async (_request, reply) => {
    const pool = deps.database.poolStats();
    deps.metrics.dbPool.labels('total').set(pool.total);
    deps.metrics.dbPool.labels('idle').set(pool.idle);
    deps.metrics.dbPool.labels('waiting').set(pool.waiting);
    void reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });

  app.get('/openapi.json', { schema: hide }, async () => app.swagger());
  app.get('/.well-known/jwks.json', { schema: hide }, async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300');
    return deps.keys.jwks();
  });
}
