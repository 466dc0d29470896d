import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createQueue, type Queue } from './queue.js';
import { systemResolver, type Resolver, type UrlPolicy } from './url-guard.js';
import { loadKeyRing, type KeyRing } from '../auth/keys.js';
import { createIdentityServices, openIdentity, type Identity } from '../auth/identity.js';
import { createProjectService } from '../projects/project.service.js';
import { createServiceService } from '../services/service.service.js';
import { createBuildService } from '../builds/build.service.js';
import { createReleaseService } from '../releases/release.service.js';
import { createDeploymentService } from '../deployments/deployment.service.js';
import { createReconciler, type Reconciler } from '../deployments/reconciler.js';
import { createLocalRuntime } from '../runtime/local/local-runtime.js';
import type { RuntimeDriver } from '../runtime/runtime.js';
import { createRouter, type Router } from '../router/router.js';
import {
  createLockbox,
  openLockboxStore,
  type Lockbox,
  type LockboxStore,
} from '../secrets/lockbox.js';
import { createGitCredentialSource } from '../secrets/platform-credentials.js';
import type { RotationHooks } from '../secrets/rotation-runner.js';
import { openAudit, type Audit } from '../audit/audit.js';
import { prepareDataFolder, warnWithoutIsolation } from './data-folder.js';
import { workloadUserFor, type RunAs } from './workload-users.js';

export interface WorkerIdentity {
  id: string;
  staleMs: number;
  /** Why this process, elected leader, could not start the leader's work (the router's port). */
  leaderFailure?: string;
}

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

/** Everything Switchyard's processes share, built once; close() releases it in reverse. */
export interface Dependencies {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  metrics: Metrics;
  keys: KeyRing;
  queue: Queue;
  /** This process as a worker, for claims on builds and deployments. */
  worker: WorkerIdentity;
  resolver: Resolver;
  /** The workload side: present when this process runs workers (role all or worker). */
  runtime: RuntimeDriver | undefined;
  router: Router | undefined;
  reconciler: Reconciler | undefined;
  domain: ReturnType<typeof createDomain>;
  /** Accounts' shared parts: keys' cache, deny list, password hasher, Redis, sign-in guard. */
  identity: Identity;
  /** Secrets: store, API services, delivery to workloads and (with workloads) rotations. */
  lockbox: Lockbox;
  /** The audit trail: recorder, batched writer and spool, reading, checkpoints, sinks. */
  audit: Audit;
  readiness(): Promise<Record<string, ReadinessCheck>>;
  close(): Promise<void>;
}

export interface DependencyOverrides {
  /** An already-migrated database (tests share prepared ones). */
  database?: Database;
  resolver?: Resolver;
  pollingIntervalSeconds?: number;
  /** Tests inject failures between the steps of a secret rotation. */
  rotationHooks?: RotationHooks;
}

function createDomain(deps: {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  metrics: Metrics;
  keys: KeyRing;
  queue: Queue;
  resolver: Resolver;
  runtime: RuntimeDriver | undefined;
  reconciler: Reconciler | undefined;
  routerPort: number;
  worker: WorkerIdentity;
  identity: Identity;
  lockboxStore: LockboxStore;
  audit: Audit;
}) {
  const { config, logger, queue } = deps;
  const db = deps.database.db;
  const gitPolicy: UrlPolicy = {
    allowedGitHosts: config.git.allowedHosts,
    allowLocalGit: config.git.allowLocal,
    allowPrivateNetworks: config.git.allowPrivateNetworks,
    localGitRoots: config.git.localRoots,
    dataDir: config.dataDir,
  };
  const audit = deps.audit.recorder;
  const projects = createProjectService({ db, logger, audit });
  const identityServices = createIdentityServices({ ...deps, projects });
  const services = createServiceService({
    db,
    logger,
    projects,
    gitPolicy,
    resolver: deps.resolver,
    audit,
  });
  const builds = createBuildService({
    db,
    logger,
    queue,
    metrics: deps.metrics,
    services,
    dataDir: config.dataDir,
    timeoutMs: config.builds.timeoutMs,
    workloadUser: workloadUserOf(config),
    worker: deps.worker,
    secretValues: deps.lockboxStore.delivery.knownValues,
    gitCredentials: createGitCredentialSource({
      db,
      logger,
      store: deps.lockboxStore.store,
      path: config.git.credentialsFile,
    }),
    audit,
  });
  const releases = createReleaseService({ db, services });
  const deployments = createDeploymentService({
    db,
    logger,
    queue,
    projects,
    services,
    baseDomain: config.router.baseDomain,
    routerPort: deps.routerPort,
    runtime: deps.runtime,
    reconciler: deps.reconciler,
    audit,
  });
  return { ...identityServices, projects, services, builds, releases, deployments };
}

/** The user of a project's builds and instances by its slot, when isolation is on. */
function workloadUserOf(
  config: Readonly<Config>,
): ((slot: number) => RunAs | undefined) | undefined {
  if (config.workloads.isolation === 'none') return undefined;
  return (slot) => workloadUserFor(config.workloads, slot);
}

/**
 * Redis is optional: without it, and while it is away, Switchyard serves from process memory
 * and the database, so the process stays ready; the detail says when it is degraded.
 */
function cacheCheck(redis: Redis | undefined): ReadinessCheck {
  if (redis === undefined) return { ok: true, detail: 'in-process' };
  if (redis.status === 'ready') return { ok: true, detail: 'redis' };
  return { ok: true, detail: `degraded: redis ${redis.status}, serving from process memory` };
}

/** Opens the database (migrating it), loads keys, and wires every service. Listens on nothing. */
export async function createDependencies(
  config: Readonly<Config>,
  logger: Logger,
  overrides: DependencyOverrides = {},
): Promise<Dependencies> {
  await prepareDataFolder(config, logger);
  const database = overrides.database ?? (await openDatabase(config, logger));
  const owned: Array<() => Promise<void>> =
    overrides.database === undefined ? [() => database.close()] : [];
  try {
    if (overrides.database === undefined) await migrate(database, logger);
    const keys = await loadKeyRing({
      keyFile: config.auth.signingKeyFile,
      keyFiles: config.auth.keyFiles,
      keysDir: config.auth.keysDir,
      signingKeyId: config.auth.signingKeyId,
      dataDir: config.dataDir,
    });
    const metrics = createMetrics();
    const worker: WorkerIdentity = {
      id: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
      staleMs: config.process.workerStaleMs,
    };
    const identity = await openIdentity({ config, logger, database, metrics });
    owned.push(() => identity.close());
    const queue = createQueue(database, logger, {
      pollingIntervalSeconds: overrides.pollingIntervalSeconds ?? 0.5,
      // Processes that take jobs also send the scheduled ones (the identity purge).
      schedule: config.process.role !== 'api',
    });
    const resolver = overrides.resolver ?? systemResolver;

    const lockboxStore = openLockboxStore(config, logger, database.db);
    const audit = openAudit({
      config,
      logger,
      database,
      registry: metrics.registry,
      keys,
      masterKeys: lockboxStore.keys,
      resolver,
    });
    owned.push(() => audit.close());
    const runsWorkloads = config.process.role !== 'api';
    if (runsWorkloads) warnWithoutIsolation(config, logger);
    const runtime = runsWorkloads
      ? createLocalRuntime({
          stateDir: join(config.dataDir, 'runtime'),
          logger,
          drainMs: config.deployments.drainMs,
          logMaxBytes: config.deployments.logMaxBytes,
        })
      : undefined;
    const router = runsWorkloads
      ? createRouter({
          logger,
          port: config.router.port,
          host: config.router.host,
          upstreamTimeoutMs: config.router.upstreamTimeoutMs,
        })
      : undefined;
    const reconciler =
      runtime !== undefined && router !== undefined
        ? createReconciler({
            db: database.db,
            runtime,
            router,
            logger,
            metrics,
            baseDomain: config.router.baseDomain,
            healthTimeoutMs: config.deployments.healthTimeoutMs,
            drainMs: config.deployments.drainMs,
            worker,
            workloadSecrets: lockboxStore.delivery.workloadSecrets,
            workloadUser: workloadUserOf(config),
          })
        : undefined;
    const domain = createDomain({
      config,
      logger,
      database,
      metrics,
      keys,
      queue,
      resolver,
      runtime,
      reconciler,
      routerPort: config.router.port,
      identity,
      worker,
      lockboxStore,
      audit,
    });
    const lockbox = createLockbox(lockboxStore, {
      db: database.db,
      logger,
      queue,
      projects: domain.projects,
      services: domain.services,
      reconciler,
      runtime,
      healthTimeoutMs: config.deployments.healthTimeoutMs,
      ...(overrides.rotationHooks === undefined ? {} : { hooks: overrides.rotationHooks }),
    });

    return {
      config,
      logger,
      database,
      metrics,
      keys,
      queue,
      worker,
      identity,
      resolver,
      runtime,
      router,
      reconciler,
      domain,
      lockbox,
      audit,
      async readiness() {
        const checks: Record<string, ReadinessCheck> = {};
        try {
          await database.ping();
          checks['database'] = { ok: true };
        } catch (error) {
          checks['database'] = { ok: false, detail: (error as Error).message };
        }
        checks['runtime'] = {
          ok: true,
          detail: runtime === undefined ? 'not in this process' : runtime.name,
        };
        checks['cache'] = cacheCheck(identity.redis);
        if (worker.leaderFailure !== undefined) {
          checks['leadership'] = { ok: false, detail: worker.leaderFailure };
        }
        return checks;
      },
      async close() {
        reconciler?.close();
        await router?.close();
        await runtime?.close();
        for (const release of owned.reverse()) await release();
      },
    };
  } catch (error) {
    for (const release of owned.reverse()) await release().catch(() => undefined);
    throw error;
  }
}
