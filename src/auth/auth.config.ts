import type { Reader } from '../platform/config.js';
import type { Role } from '../platform/db/schema.js';

/**
 * The identity half of the configuration: signing keys, password hashing, sign-in
 * protection, browser sessions and single sign-on. Read by loadConfig with its Reader, so
 * every problem is reported together with the rest of the configuration.
 */
export interface IdentityConfig {
  /** Key files, oldest first (SWITCHYARD_JWT_KEY_FILES). */
  keyFiles: string[];
  /** A folder whose *.pem / *.jwk / *.json files are keys, ordered by file name. */
  keysDir: string | undefined;
  /** The kid that signs; unset: the newest private key. */
  signingKeyId: string | undefined;
  clockSkewSeconds: number;
  password: PasswordPolicy;
  rateLimit: { windowSeconds: number; perAddress: number; perAccount: number };
  lockout: LockoutPolicy;
  apiTokenMaxTtlDays: number;
  /** How often each replica reads new revocations from the database. */
  revocationPollMs: number;
  cookieSecure: 'auto' | 'always' | 'never';
  oidc: OidcConfig | undefined;
  signUp: SignUpPolicy;
  /** Outbound mail for sign-up verification; unset, no mail is sent. */
  smtp: SmtpConfig | undefined;
  retention: IdentityRetention;
}

/**
 * Who may create an account. `open`: anyone, usable at once. `verify`: anyone who proves
 * the email address by redeeming a mailed token. `closed`: only instance admins create users.
 */
export type SignUpMode = 'open' | 'verify' | 'closed';

export interface SignUpPolicy {
  mode: SignUpMode;
  /** How long a mailed verification token stays redeemable. */
  tokenTtlSeconds: number;
  /** At most one sign-up mail per address in this interval, so nobody can flood a mailbox. */
  mailIntervalSeconds: number;
}

export interface SmtpConfig {
  /** smtp:// (STARTTLS, required outside loopback) or smtps:// (TLS); no password inside. */
  url: string;
  /** A file holding the SMTP password, re-read when it changes. */
  passwordFile: string | undefined;
  from: string;
}

/** How long identity rows outlive their use before the purge job deletes them. */
export interface IdentityRetention {
  /** Expired or revoked sessions, expired refresh tokens, used or expired sign-up tokens. */
  days: number;
  /** Failed sign-in counters with no failure (and no lock) for this long. */
  signInFailureHours: number;
  /** Rows deleted per statement: each batch is its own short transaction. */
  batchSize: number;
  everyMinutes: number;
}

export interface PasswordPolicy {
  algorithm: 'argon2id' | 'bcrypt';
  argon2: { memoryKib: number; timeCost: number; parallelism: number };
  bcryptCost: number;
  minLength: number;
  maxLength: number;
}

export interface LockoutPolicy {
  /** Consecutive failures that lock an account. */
  threshold: number;
  baseSeconds: number;
  maxSeconds: number;
}

export interface GroupRoleMapping {
  group: string;
  project: string;
  role: Role;
  environment: string | undefined;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scopes: string;
  groupsClaim: string;
  adminGroups: string[];
  groupRoles: GroupRoleMapping[];
}

const ROLES: readonly Role[] = ['owner', 'admin', 'developer', 'readonly'];
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function readIdentityConfig(read: Reader): IdentityConfig {
  const minLength = read.int('SWITCHYARD_PASSWORD_MIN_LENGTH', 10, 8, 128);
  const maxLength = read.int('SWITCHYARD_PASSWORD_MAX_LENGTH', 256, 16, 1024);
  if (maxLength < minLength) {
    read.problems.push(
      `SWITCHYARD_PASSWORD_MAX_LENGTH: must be at least SWITCHYARD_PASSWORD_MIN_LENGTH (${minLength})`,
    );
  }
  const lockoutBase = read.int('SWITCHYARD_LOCKOUT_BASE_SECONDS', 30, 1, 86_400);
  return {
    keyFiles: read.list('SWITCHYARD_JWT_KEY_FILES'),
    keysDir: read.string('SWITCHYARD_JWT_KEYS_DIR'),
    signingKeyId: read.string('SWITCHYARD_JWT_SIGNING_KID'),
    clockSkewSeconds: read.int('SWITCHYARD_JWT_CLOCK_SKEW_SECONDS', 30, 0, 120),
    password: {
      algorithm: read.oneOf(
        'SWITCHYARD_PASSWORD_HASH',
        ['argon2id', 'bcrypt'] as const,
        'argon2id',
      ),
      // Bounds: OWASP's floor for argon2id (7 MiB with at least two passes) up to 1 GiB.
      argon2: {
        memoryKib: read.int('SWITCHYARD_ARGON2_MEMORY_KIB', 19_456, 7_168, 1_048_576),
        timeCost: read.int('SWITCHYARD_ARGON2_TIME_COST', 2, 2, 20),
        parallelism: read.int('SWITCHYARD_ARGON2_PARALLELISM', 1, 1, 16),
      },
      // Below 10 is too fast to slow guessing; 15 already costs about two seconds a hash.
      bcryptCost: read.int('SWITCHYARD_BCRYPT_COST', 12, 10, 15),
      minLength,
      maxLength,
    },
    rateLimit: {
      windowSeconds: read.int('SWITCHYARD_AUTH_RATE_LIMIT_WINDOW_SECONDS', 60, 1, 3_600),
      perAddress: read.int('SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS', 100, 1, 1_000_000),
      perAccount: read.int('SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT', 10, 1, 1_000_000),
    },
    lockout: {
      threshold: read.int('SWITCHYARD_LOCKOUT_THRESHOLD', 5, 1, 100),
      baseSeconds: lockoutBase,
      maxSeconds: read.int('SWITCHYARD_LOCKOUT_MAX_SECONDS', 1_800, lockoutBase, 86_400),
    },
    apiTokenMaxTtlDays: read.int('SWITCHYARD_API_TOKEN_MAX_TTL_DAYS', 365, 1, 3_650),
    revocationPollMs: read.int('SWITCHYARD_REVOCATION_POLL_MS', 1_000, 100, 60_000),
    cookieSecure: read.oneOf(
      'SWITCHYARD_COOKIE_SECURE',
      ['auto', 'always', 'never'] as const,
      'auto',
    ),
    oidc: readOidcConfig(read),
    ...readSignUpConfig(read),
    retention: {
      days: read.int('SWITCHYARD_IDENTITY_RETENTION_DAYS', 7, 0, 3_650),
      signInFailureHours: read.int('SWITCHYARD_SIGN_IN_FAILURE_RETENTION_HOURS', 24, 1, 8_760),
      batchSize: read.int('SWITCHYARD_IDENTITY_PURGE_BATCH_SIZE', 1_000, 10, 100_000),
      everyMinutes: read.int('SWITCHYARD_IDENTITY_PURGE_EVERY_MINUTES', 15, 1, 60),
    },
  };
}

function readSignUpConfig(read: Reader): Pick<IdentityConfig, 'signUp' | 'smtp'> {
  const smtp = readSmtpConfig(read);
  const mode = read.oneOf(
    'SWITCHYARD_SIGN_UP',
    ['open', 'verify', 'closed'] as const,
    smtp === undefined ? 'open' : 'verify',
  );
  if (mode === 'verify' && smtp === undefined) {
    read.problems.push('SWITCHYARD_SIGN_UP: verify needs outbound mail (SWITCHYARD_SMTP_URL)');
  }
  return {
    smtp,
    signUp: {
      mode,
      tokenTtlSeconds: read.int('SWITCHYARD_SIGN_UP_TOKEN_TTL_SECONDS', 86_400, 300, 604_800),
      mailIntervalSeconds: read.int('SWITCHYARD_SIGN_UP_MAIL_INTERVAL_SECONDS', 300, 1, 86_400),
    },
  };
}

function readSmtpConfig(read: Reader): SmtpConfig | undefined {
  const url = read.url('SWITCHYARD_SMTP_URL', ['smtp:', 'smtps:']);
  const passwordFile = read.string('SWITCHYARD_SMTP_PASSWORD_FILE');
  // Secrets come from files only: a plain variable leaks through /proc and crash reports.
  if (passwordFile === undefined && read.string('SWITCHYARD_SMTP_PASSWORD') !== undefined) {
    read.problems.push(
      'SWITCHYARD_SMTP_PASSWORD: not read from the environment; put it in a file named by SWITCHYARD_SMTP_PASSWORD_FILE',
    );
  }
  if (url === undefined) return undefined;
  if (hasPassword(url)) {
    read.problems.push(
      'SWITCHYARD_SMTP_URL: must not contain a password; put it in a file named by SWITCHYARD_SMTP_PASSWORD_FILE',
    );
  }
  const from = read.string('SWITCHYARD_MAIL_FROM');
  if (from === undefined) {
    read.problems.push('SWITCHYARD_MAIL_FROM: required when SWITCHYARD_SMTP_URL is set');
    return undefined;
  }
  return { url, passwordFile, from };
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

function readOidcConfig(read: Reader): OidcConfig | undefined {
  const issuer = read.url('SWITCHYARD_OIDC_ISSUER', ['https:', 'http:']);
  if (issuer === undefined) return undefined;
  const clientId = read.string('SWITCHYARD_OIDC_CLIENT_ID');
  const clientSecret = read.string('SWITCHYARD_OIDC_CLIENT_SECRET');
  const redirectUri = read.url('SWITCHYARD_OIDC_REDIRECT_URI', ['https:', 'http:']);
  if (isPlainHttpOutsideLoopback(issuer)) {
    read.problems.push(
      'SWITCHYARD_OIDC_ISSUER: must be https (plain http only on a loopback address)',
    );
  }
  for (const [name, value] of [
    ['SWITCHYARD_OIDC_CLIENT_ID', clientId],
    ['SWITCHYARD_OIDC_CLIENT_SECRET', clientSecret],
    ['SWITCHYARD_OIDC_REDIRECT_URI', redirectUri],
  ] as const) {
    if (value === undefined)
      read.problems.push(`${name}: required when SWITCHYARD_OIDC_ISSUER is set`);
  }
  if (clientId === undefined || clientSecret === undefined || redirectUri === undefined)
    return undefined;
  return {
    issuer,
    clientId,
    clientSecret,
    redirectUri,
    scopes: read.string('SWITCHYARD_OIDC_SCOPES') ?? 'openid email profile',
    groupsClaim: read.string('SWITCHYARD_OIDC_GROUPS_CLAIM') ?? 'groups',
    adminGroups: read.list('SWITCHYARD_OIDC_ADMIN_GROUPS'),
    groupRoles: read
      .list('SWITCHYARD_OIDC_GROUP_ROLES')
      .map((entry) => parseGroupRole(entry, read.problems))
      .filter((mapping) => mapping !== undefined),
  };
}

function isPlainHttpOutsideLoopback(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' && !LOOPBACK_HOSTS.has(parsed.hostname);
  } catch {
    return false;
  }
}

/** `group=project:role` or `group=project:role:environment`. */
export function parseGroupRole(entry: string, problems: string[]): GroupRoleMapping | undefined {
  const [group, target] = entry.split('=', 2).map((part) => part.trim());
  const [project, role, environment, extra] = (target ?? '').split(':');
  const isValid =
    group !== undefined &&
    group !== '' &&
    project !== undefined &&
    LABEL.test(project) &&
    (ROLES as readonly string[]).includes(role ?? '') &&
    (environment === undefined || LABEL.test(environment)) &&
    extra === undefined;
  if (!isValid || group === undefined || project === undefined) {
    problems.push(
      `SWITCHYARD_OIDC_GROUP_ROLES: "${entry}" is not group=project:role[:environment] (roles: ${ROLES.join(', ')})`,
    );
    return undefined;
  }
  return { group, project, role: role as Role, environment };
}
