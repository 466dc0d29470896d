import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../platform/config.js';
import type { Database } from '../platform/db/database.js';
import type { Metrics } from '../platform/metrics.js';
import type { ProjectService } from '../projects/project.service.js';
import { createAccountService } from './account.service.js';
import { createApiTokenService } from './api-token.service.js';
import { createAuthService } from './auth.service.js';
import { createDenyList, type DenyList } from './deny-list.js';
import { createGroupRoleService } from './group-role.service.js';
import type { KeyRing } from './keys.js';
import { createOidcService } from './oidc.service.js';
import { createPasswordHasher, type PasswordHasher } from './password.js';
import {
  createMemoryRateLimiter,
  createRedisRateLimiter,
  type RateLimiter,
} from './rate-limiter.js';
import { createRedisFallback } from './redis-fallback.js';
import { createSignInGuard, type SignInGuard } from './sign-in-guard.js';
import type { Queue } from '../platform/queue.js';
import { createIdentityPurge } from './identity-purge.js';
import { createSmtpMailer } from './mailer.js';
import { createSignUpService } from './sign-up.service.js';

/** The long-lived parts of identity: deny list, rate limits, password hashing, Redis link. */
export interface Identity {
  denyList: DenyList;
  limiter: RateLimiter;
  hasher: PasswordHasher;
  guard: SignInGuard;
  redis: Redis | undefined;
  close(): Promise<void>;
}

/**
 * Opens the identity infrastructure and loads the deny list. With REDIS_URL, rate limits
 * are shared and revocations fan out through Redis; Redis failures fall back to process
 * memory and the database, logged and counted, never failing a request.
 */
export async function openIdentity(deps: {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  metrics: Metrics;
}): Promise<Identity> {
  const { config, logger, database } = deps;
  const fallback = createRedisFallback(logger, deps.metrics.registry);
  const redis = config.redisUrl === undefined ? undefined : connectRedis(config.redisUrl);
  redis?.on('error', (error: Error) => fallback.failed('connection', 'connect', error));
  redis?.on('ready', () => fallback.succeeded('connection'));

  const limiter =
    redis === undefined
      ? createMemoryRateLimiter()
      : createRedisRateLimiter({ client: redis, prefix: config.redisKeyPrefix, fallback });
  const denyList = createDenyList({
    db: database.db,
    logger,
    horizonSeconds: config.auth.accessTokenTtlSeconds + config.auth.clockSkewSeconds,
    // One embedded process holds the whole list; only shared databases need polling.
    pollMs: database.kind === 'postgres' ? config.auth.revocationPollMs : undefined,
    redis:
      redis === undefined
        ? undefined
        : { client: redis, channel: `${config.redisKeyPrefix}denials`, fallback },
  });
  await denyList.start();
  const guard = createSignInGuard({ db: database.db, limiter, settings: config.auth, logger });

  return {
    denyList,
    limiter,
    hasher: createPasswordHasher(config.auth.password),
    guard,
    redis,
    async close() {
      await denyList.close();
      redis?.disconnect();
    },
  };
}

function connectRedis(url: string): Redis {
  return new Redis(url, {
    // Fail fast instead of queueing while Redis is away: callers fall back at once.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
  });
}

/** The identity services of the domain: sign-in, accounts, API tokens, single sign-on. */
export function createIdentityServices(deps: {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  keys: KeyRing;
  identity: Identity;
  projects: ProjectService;
  queue: Queue;
  metrics: Metrics;
}) {
  const { config, logger, identity, projects } = deps;
  const db = deps.database.db;
  const apiTokens = createApiTokenService({
    db,
    logger,
    maxTtlDays: config.auth.apiTokenMaxTtlDays,
    resolveProject: async (principal, project) =>
      (await projects.access(principal, project, 'project.read')).projectId,
  });
  const auth = createAuthService({
    db,
    keys: deps.keys,
    settings: config.auth,
    logger,
    hasher: identity.hasher,
    denyList: identity.denyList,
    guard: identity.guard,
    apiTokens,
  });
  const accounts = createAccountService({
    db,
    logger,
    auth,
    hasher: identity.hasher,
    guard: identity.guard,
  });
  const oidc = createOidcService({ db, logger, config: config.auth.oidc, auth });
  const groupRoles = createGroupRoleService({ db, projects });
  const signUp = createSignUpService({
    db,
    logger,
    hasher: identity.hasher,
    guard: identity.guard,
    queue: deps.queue,
    policy: config.auth.signUp,
    mailer: config.auth.smtp === undefined ? undefined : createSmtpMailer(config.auth.smtp),
  });
  const identityPurge = createIdentityPurge({
    db,
    logger,
    registry: deps.metrics.registry,
    retention: config.auth.retention,
  });
  return { auth, accounts, apiTokens, oidc, groupRoles, signUp, identityPurge };
}
