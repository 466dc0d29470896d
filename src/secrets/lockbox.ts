import type { Logger } from 'pino';
import { ConfigError, type Config } from '../platform/config.js';
import type { Db } from '../platform/db/transaction.js';
import type { Queue } from '../platform/queue.js';
import type { Reconciler } from '../deployments/reconciler.js';
import type { ProjectService } from '../projects/project.service.js';
import type { RuntimeDriver } from '../runtime/runtime.js';
import type { ServiceService } from '../services/service.service.js';
import { FileCredential } from './file-credential.js';
import { rememberConnectionPasswords } from './platform-credentials.js';
import {
  createRotationRunner,
  type RotationHooks,
  type RotationRunner,
} from './rotation-runner.js';
import { createRotationService, type RotationService } from './rotation.service.js';
import {
  ensureEmbeddedMasterKey,
  isShared,
  loadMasterKeyRing,
  type MasterKeyRing,
} from './secret-crypto.js';
import { createSecretDelivery, type SecretDelivery } from './secret-delivery.js';
import { createSecretService, type SecretService } from './secret.service.js';
import { createBuiltinStore, createVaultStore, type SecretValueStore } from './value-store.js';
import { VaultKvClient } from './vault-kv.js';

/** The part of Lockbox the reconciler needs, built before it. */
export interface LockboxStore {
  keys: MasterKeyRing;
  store: SecretValueStore;
  delivery: SecretDelivery;
  rotationLease: { heartbeatMs: number; leaseMs: number };
}

export interface Lockbox extends LockboxStore {
  secrets: SecretService;
  rotations: RotationService;
  /** Present where workloads run (role all or worker). */
  runner: RotationRunner | undefined;
}

/**
 * What keeps Lockbox from opening with this configuration. Checked apart from loadConfig,
 * which also serves tools that open only the database (they need no master key).
 */
export function lockboxConfigProblems(config: Readonly<Config>): string[] {
  if (config.secrets.masterKeyFile !== undefined || config.mode !== 'external') return [];
  return [
    'SWITCHYARD_MASTER_KEY_PATH: required when DATABASE_URL is set (secrets are encrypted under it; every replica must share it)',
  ];
}

/**
 * Loads the master keys and opens the configured value store. In external mode a master key
 * file is required (it seals built-in values and staged rotation values); the embedded mode
 * generates one into the data folder. There is never a built-in fallback key.
 */
export function openLockboxStore(config: Readonly<Config>, logger: Logger, db: Db): LockboxStore {
  const { secrets } = config;
  const problems = lockboxConfigProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  rememberConnectionPasswords(config);
  const keyFile = secrets.masterKeyFile ?? ensureEmbeddedMasterKey(config.dataDir);
  if (isShared(keyFile))
    logger.warn({ path: keyFile }, 'master key file is readable by others; chmod 600 it');
  const keys = loadMasterKeyRing(keyFile, secrets.previousMasterKeyFiles);

  let store: SecretValueStore = createBuiltinStore(keys);
  if (secrets.backend === 'vault' && secrets.vault !== undefined) {
    const token = new FileCredential(secrets.vault.tokenFile);
    const client = new VaultKvClient({
      address: secrets.vault.address,
      mount: secrets.vault.mount,
      namespace: secrets.vault.namespace,
      timeoutMs: secrets.vault.timeoutMs,
      token: async () => token.read(),
    });
    store = createVaultStore(client, secrets.vault.prefix);
  }
  logger.info(
    { backend: store.backend, masterKeyId: keys.current.id, previousKeys: keys.byId.size - 1 },
    'lockbox ready',
  );
  return {
    keys,
    store,
    delivery: createSecretDelivery({ db, logger, store }),
    // A rotation's runner renews its claim as workers renew theirs, and is presumed dead
    // after as long as a silent worker is.
    rotationLease: {
      heartbeatMs: config.process.heartbeatIntervalMs,
      leaseMs: config.process.workerStaleMs,
    },
  };
}

export function createLockbox(
  base: LockboxStore,
  deps: {
    db: Db;
    logger: Logger;
    queue: Queue;
    projects: ProjectService;
    services: ServiceService;
    reconciler: Reconciler | undefined;
    runtime: RuntimeDriver | undefined;
    healthTimeoutMs: number;
    hooks?: RotationHooks;
  },
): Lockbox {
  const { db, logger } = deps;
  const secrets = createSecretService({
    db,
    logger,
    store: base.store,
    projects: deps.projects,
    services: deps.services,
  });
  const rotations = createRotationService({
    db,
    logger,
    queue: deps.queue,
    keys: base.keys,
    secrets,
    services: deps.services,
  });
  const runner =
    deps.reconciler !== undefined && deps.runtime !== undefined
      ? createRotationRunner({
          db,
          logger,
          secrets,
          delivery: base.delivery,
          keys: base.keys,
          reconciler: deps.reconciler,
          runtime: deps.runtime,
          ...base.rotationLease,
          ...(deps.hooks === undefined ? {} : { hooks: deps.hooks }),
        })
      : undefined;
  return { ...base, secrets, rotations, runner };
}
