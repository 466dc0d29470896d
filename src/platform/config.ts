import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { readIdentityConfig, type IdentityConfig } from '../auth/auth.config.js';
import { readAuditConfig, type AuditConfig } from '../audit/audit.config.js';

/**
 * Switchyard's configuration, read once from the environment. Secrets may come from a file
 * named by the `*_FILE` variant. Every problem is collected and reported together.
 */
export interface Config {
  mode: 'embedded' | 'external';
  dataDir: string;
  databaseUrl: string | undefined;
  database: {
    poolMax: number;
    idleTimeoutMs: number;
    maxLifetimeMs: number;
    statementTimeoutMs: number;
    connectTimeoutMs: number;
    /**
     * Client-side: a query unanswered this long fails and its connection is destroyed. Longer
     * than the statement timeout, so it fires only when the server cannot answer at all (a
     * connection cut without being closed).
     */
    queryTimeoutMs: number;
  };
  redisUrl: string | undefined;
  api: { host: string; port: number; bodyLimitBytes: number; requestTimeoutMs: number };
  router: { host: string; port: number; upstreamTimeoutMs: number; baseDomain: string };
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  auth: {
    issuer: string;
    audience: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    signingKeyFile: string | undefined;
  } & IdentityConfig;
  /** Origins browsers may call the API from; empty keeps CORS closed. */
  cors: { allowedOrigins: string[] };
  /** Prefix of every Redis key and channel, so several installations can share one Redis. */
  redisKeyPrefix: string;
  git: {
    allowedHosts: string[];
    allowLocal: boolean;
    allowPrivateNetworks: boolean;
    credentialsFile: string | undefined;
    /** Folders (absolute, as given) under which anyone may name a local repository. */
    localRoots: string[];
  };
  /**
   * How the local runtime separates workloads: `uid` runs each project's builds and instances
   * as an operating-system user of its own (`uidBase` + the project's slot); `none` runs them
   * as Switchyard's own user. `uid` needs Switchyard to run as root.
   */
  workloads: { isolation: 'uid' | 'none'; uidBase: number };
  builds: { timeoutMs: number; concurrency: number };
  deployments: { healthTimeoutMs: number; drainMs: number; logMaxBytes: number };
  process: {
    role: 'all' | 'api' | 'worker';
    shutdownTimeoutMs: number;
    heartbeatIntervalMs: number;
    /** A worker silent this long is dead: its claims lapse and the leader lease can move. */
    workerStaleMs: number;
  };
  /** The audit trail: spool, batched writer, checkpoints, compliance sinks. */
  audit: AuditConfig;
  secrets: {
    backend: 'builtin' | 'vault';
    /** Unset in embedded mode: a key is generated into the data folder. */
    masterKeyFile: string | undefined;
    /** Older master keys kept for opening values until `secrets rewrap` has run. */
    previousMasterKeyFiles: string[];
    vault:
      | {
          address: string;
          mount: string;
          prefix: string;
          tokenFile: string;
          namespace: string | undefined;
          timeoutMs: number;
        }
      | undefined;
  };
}

type Env = Record<string, string | undefined>;

export class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string): string | undefined {
    const fileName = this.env[`${name}_FILE`];
    if (fileName !== undefined && fileName !== '') {
      try {
        return readFileSync(fileName, 'utf8').trim();
      } catch (error) {
        this.problems.push(`${name}_FILE: cannot read ${fileName} (${(error as Error).message})`);
        return undefined;
      }
    }
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    this.problems.push(`${name}: expected true or false, got "${raw}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name}: expected one of ${allowed.join(', ')}, got "${raw}"`);
    return fallback;
  }

  /** A comma-separated list; empty entries are dropped. */
  list(name: string): string[] {
    return (this.string(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  url(name: string, protocols: readonly string[]): string | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        this.problems.push(`${name}: expected a ${protocols.join(' or ')} URL`);
      }
    } catch {
      this.problems.push(`${name}: not a valid URL`);
    }
    return raw;
  }
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads and validates the configuration; throws ConfigError listing every problem.
 * `runsAsRoot` decides the default workload isolation (tests may pass it).
 */
export function loadConfig(
  env: Env = process.env,
  runsAsRoot: boolean = process.getuid?.() === 0,
): Readonly<Config> {
  const read = new Reader(env);
  const databaseUrl = read.url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const mode = databaseUrl === undefined ? 'embedded' : 'external';
  // As root, workload users must be able to pass through the folders above the data folder,
  // which a root home folder (0700) does not allow: root's default is the system's state folder.
  const defaultDataDir =
    process.getuid?.() === 0 ? '/var/lib/switchyard' : join(homedir(), '.switchyard');
  const dataDirRaw = read.string('SWITCHYARD_DATA_DIR') ?? defaultDataDir;
  const dataDir = isAbsolute(dataDirRaw) ? dataDirRaw : resolve(dataDirRaw);

  const config: Config = {
    mode,
    dataDir,
    databaseUrl,
    database: readDatabaseConfig(read),
    redisUrl: read.url('REDIS_URL', ['redis:', 'rediss:']),
    api: {
      host: read.string('SWITCHYARD_HOST') ?? '127.0.0.1',
      port: read.int('SWITCHYARD_PORT', 8080, 0, 65_535),
      bodyLimitBytes: read.int('SWITCHYARD_BODY_LIMIT_BYTES', 1_048_576, 1_024, 52_428_800),
      requestTimeoutMs: read.int('SWITCHYARD_REQUEST_TIMEOUT_MS', 30_000, 1_000, 600_000),
    },
    router: {
      host: read.string('SWITCHYARD_ROUTER_HOST') ?? '127.0.0.1',
      port: read.int('SWITCHYARD_ROUTER_PORT', 8000, 0, 65_535),
      upstreamTimeoutMs: read.int('SWITCHYARD_ROUTER_UPSTREAM_TIMEOUT_MS', 30_000, 100, 600_000),
      baseDomain: (read.string('SWITCHYARD_ROUTER_DOMAIN') ?? 'localhost').toLowerCase(),
    },
    logLevel: read.oneOf(
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      'info',
    ),
    auth: {
      issuer: read.string('SWITCHYARD_JWT_ISSUER') ?? 'switchyard',
      audience: read.string('SWITCHYARD_JWT_AUDIENCE') ?? 'switchyard-api',
      accessTokenTtlSeconds: read.int('SWITCHYARD_ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400),
      refreshTokenTtlSeconds: read.int(
        'SWITCHYARD_REFRESH_TOKEN_TTL_SECONDS',
        2_592_000,
        3_600,
        31_536_000,
      ),
      signingKeyFile: read.string('SWITCHYARD_JWT_PRIVATE_KEY_PATH'),
      ...readIdentityConfig(read),
    },
    cors: { allowedOrigins: read.list('SWITCHYARD_CORS_ORIGINS') },
    redisKeyPrefix: read.string('REDIS_KEY_PREFIX') ?? 'switchyard:',
    git: {
      allowedHosts: (
        read.string('SWITCHYARD_GIT_ALLOWED_HOSTS') ?? 'github.com,gitlab.com,bitbucket.org'
      )
        .split(',')
        .map((host) => host.trim().toLowerCase())
        .filter((host) => host !== ''),
      allowLocal: read.bool('SWITCHYARD_ALLOW_LOCAL_GIT', mode === 'embedded'),
      allowPrivateNetworks: read.bool('SWITCHYARD_ALLOW_PRIVATE_NETWORKS', false),
      credentialsFile: read.string('SWITCHYARD_GIT_CREDENTIALS_PATH'),
      localRoots: readLocalRoots(read),
    },
    workloads: readWorkloadsConfig(read, runsAsRoot),
    builds: {
      timeoutMs: read.int('BUILD_TIMEOUT_MS', 900_000, 1_000, 7_200_000),
      concurrency: read.int('BUILD_CONCURRENCY', 2, 1, 64),
    },
    deployments: {
      healthTimeoutMs: read.int('DEPLOY_HEALTH_TIMEOUT_MS', 60_000, 1_000, 1_800_000),
      drainMs: read.int('DEPLOY_DRAIN_MS', 5_000, 0, 300_000),
      logMaxBytes: read.int('WORKLOAD_LOG_MAX_BYTES', 10 * 1024 * 1024, 64 * 1024, 1024 ** 3),
    },
    process: {
      role: read.oneOf('SWITCHYARD_ROLE', ['all', 'api', 'worker'] as const, 'all'),
      shutdownTimeoutMs: read.int('SWITCHYARD_SHUTDOWN_TIMEOUT_MS', 25_000, 1_000, 600_000),
      heartbeatIntervalMs: read.int('SWITCHYARD_HEARTBEAT_INTERVAL_MS', 2_000, 100, 60_000),
      workerStaleMs: read.int('SWITCHYARD_WORKER_STALE_MS', 10_000, 500, 600_000),
    },
    secrets: readSecretsConfig(read),
    audit: readAuditConfig(read, dataDir),
  };

  const hasKeys =
    config.auth.signingKeyFile !== undefined ||
    config.auth.keyFiles.length > 0 ||
    config.auth.keysDir !== undefined;
  if (mode === 'external' && !hasKeys) {
    read.problems.push(
      'SWITCHYARD_JWT_PRIVATE_KEY_PATH, SWITCHYARD_JWT_KEY_FILES or SWITCHYARD_JWT_KEYS_DIR: required when DATABASE_URL is set (every replica must share the signing keys)',
    );
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

// How much longer than the statement timeout the client waits by default: the server's own
// cancellation should win whenever the server can still answer.
const QUERY_TIMEOUT_MARGIN_MS = 5_000;

function readDatabaseConfig(read: Reader): Config['database'] {
  const statementTimeoutMs = read.int('DATABASE_STATEMENT_TIMEOUT_MS', 15_000, 100, 600_000);
  const queryTimeoutMs = read.int(
    'DATABASE_QUERY_TIMEOUT_MS',
    statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    200,
    900_000,
  );
  if (queryTimeoutMs <= statementTimeoutMs) {
    read.problems.push(
      `DATABASE_QUERY_TIMEOUT_MS: must be greater than DATABASE_STATEMENT_TIMEOUT_MS (${statementTimeoutMs}), got ${queryTimeoutMs}`,
    );
  }
  return {
    poolMax: read.int('DATABASE_POOL_MAX', 10, 1, 500),
    idleTimeoutMs: read.int('DATABASE_IDLE_TIMEOUT_MS', 30_000, 1_000, 3_600_000),
    maxLifetimeMs: read.int('DATABASE_MAX_LIFETIME_MS', 1_800_000, 0, 86_400_000),
    statementTimeoutMs,
    connectTimeoutMs: read.int('DATABASE_CONNECT_TIMEOUT_MS', 5_000, 100, 120_000),
    queryTimeoutMs,
  };
}

// Linux uids are 32-bit and (uid_t)-1 means "unchanged"; leave room for many project slots.
const MAX_WORKLOAD_UID_BASE = 4_000_000_000;

function readWorkloadsConfig(read: Reader, runsAsRoot: boolean): Config['workloads'] {
  const isolation = read.oneOf(
    'SWITCHYARD_WORKLOAD_ISOLATION',
    ['uid', 'none'] as const,
    runsAsRoot ? 'uid' : 'none',
  );
  if (isolation === 'uid' && !runsAsRoot) {
    read.problems.push(
      'SWITCHYARD_WORKLOAD_ISOLATION: uid needs Switchyard to run as root (it switches workloads to users of their own); set none to run them as this user',
    );
  }
  return {
    isolation,
    uidBase: read.int('SWITCHYARD_WORKLOAD_UID_BASE', 200_000, 1_000, MAX_WORKLOAD_UID_BASE),
  };
}

function readLocalRoots(read: Reader): string[] {
  const roots = read.list('SWITCHYARD_GIT_LOCAL_ROOTS');
  for (const root of roots) {
    if (!isAbsolute(root)) {
      read.problems.push(`SWITCHYARD_GIT_LOCAL_ROOTS: "${root}" is not an absolute path`);
    }
  }
  return roots.filter((root) => isAbsolute(root));
}

function readSecretsConfig(read: Reader): Config['secrets'] {
  const backend = read.oneOf(
    'SWITCHYARD_SECRETS_BACKEND',
    ['builtin', 'vault'] as const,
    'builtin',
  );
  const previous = read.string('SWITCHYARD_MASTER_KEY_PREVIOUS_PATHS') ?? '';
  const secrets: Config['secrets'] = {
    backend,
    masterKeyFile: read.string('SWITCHYARD_MASTER_KEY_PATH'),
    previousMasterKeyFiles: previous
      .split(',')
      .map((path) => path.trim())
      .filter((path) => path !== ''),
    vault: undefined,
  };
  if (backend !== 'vault') return secrets;
  const address = read.url('SWITCHYARD_VAULT_ADDR', ['http:', 'https:']);
  const tokenFile = read.string('SWITCHYARD_VAULT_TOKEN_PATH');
  if (address === undefined)
    read.problems.push('SWITCHYARD_VAULT_ADDR: required when SWITCHYARD_SECRETS_BACKEND is vault');
  if (tokenFile === undefined)
    read.problems.push(
      'SWITCHYARD_VAULT_TOKEN_PATH: required when SWITCHYARD_SECRETS_BACKEND is vault',
    );
  if (address === undefined || tokenFile === undefined) return secrets;
  return {
    ...secrets,
    vault: {
      address,
      tokenFile,
      mount: read.string('SWITCHYARD_VAULT_MOUNT') ?? 'secret',
      prefix: read.string('SWITCHYARD_VAULT_PREFIX') ?? 'switchyard',
      namespace: read.string('SWITCHYARD_VAULT_NAMESPACE'),
      timeoutMs: read.int('SWITCHYARD_VAULT_TIMEOUT_MS', 10_000, 100, 120_000),
    },
  };
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
