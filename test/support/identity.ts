import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { loadConfig } from '../../src/platform/config.js';
import { openDatabase, type Database } from '../../src/platform/db/database.js';
import { createDependencies, type Dependencies } from '../../src/platform/dependencies.js';
import { buildApp, type AppInstance } from '../../src/platform/app.js';
import { fakeResolver } from './app.js';
import { createTestDatabase, type Backend, type TestDatabase } from './database.js';

/** Redis for tests: database 15 of the local server unless SWITCHYARD_TEST_REDIS_URL says otherwise. */
export const testRedisUrl = (): string =>
  process.env['SWITCHYARD_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379/15';

export type LogLine = Record<string, unknown>;

/** A pino logger that keeps every line, parsed, for assertions. */
export function capturingLogger(level = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

/** A fresh Ed25519 private key in a PEM file of a temp folder. */
export function writeKeyFile(dir: string, name = 'signing.pem'): string {
  const path = join(dir, name);
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    mode: 0o600,
  });
  return path;
}

export interface IdentityTestApp {
  app: AppInstance;
  deps: Dependencies;
  logs: LogLine[];
  close(): Promise<void>;
}

export interface IdentityAppOptions {
  env?: Record<string, string>;
  /** Share a database with another app (a second replica); the caller drops it. */
  shared?: { testDb: TestDatabase; dataDir: string };
}

/**
 * The API with a capturing logger, on a fresh database of the backend or, with `shared`, on
 * another app's database through a connection pool of its own (a second replica).
 */
export async function createIdentityTestApp(
  backend: Backend,
  options: IdentityAppOptions = {},
): Promise<IdentityTestApp> {
  const ownsDb = options.shared === undefined;
  const dataDir = options.shared?.dataDir ?? mkdtempSync(join(tmpdir(), 'switchyard-identity-'));
  const testDb = options.shared?.testDb ?? (await createTestDatabase(backend));
  const config = loadConfig({
    SWITCHYARD_DATA_DIR: dataDir,
    SWITCHYARD_ROLE: 'api',
    LOG_LEVEL: 'info',
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '1000000',
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '1000000',
    // The cheapest argon2id the bounds allow: tests sign up many accounts.
    SWITCHYARD_ARGON2_MEMORY_KIB: '7168',
    REDIS_KEY_PREFIX: `switchyard-test-${randomBytes(4).toString('hex')}:`,
    ...options.env,
  });
  const { logger, lines } = capturingLogger();
  let database: Database = testDb.database;
  if (!ownsDb && testDb.url !== undefined) {
    database = await openDatabase(
      loadConfig({
        DATABASE_URL: testDb.url,
        SWITCHYARD_JWT_KEYS_DIR: dataDir,
        DATABASE_POOL_MAX: '5',
      }),
      logger,
    );
  }
  const deps = await createDependencies(config, logger, { database, resolver: fakeResolver });
  const app = await buildApp(deps);
  await app.ready();
  return {
    app,
    deps,
    logs: lines,
    async close() {
      await app.close();
      await deps.close();
      if (database !== testDb.database) await database.close();
      if (ownsDb) {
        await testDb.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

let counter = 0;
export const PASSWORD = 'correct horse battery staple';

/** Registers a user (no sign-in); the first of an instance becomes its admin. */
export async function register(
  app: AppInstance,
  name = 'user',
): Promise<{ id: string; email: string }> {
  counter += 1;
  const email = `${name}-${counter}-${randomBytes(3).toString('hex')}@example.com`;
  const response = await app.inject({
    method: 'POST',
    url: '/v1/auth/register',
    payload: { email, password: PASSWORD, name },
  });
  if (response.statusCode !== 202) throw new Error(`register failed: ${response.body}`);
  // Sign-up answers alike for every address, so the id comes from a session, ended at once.
  const { headers } = await login(app, email);
  const me = await app.inject({ method: 'GET', url: '/v1/me', headers });
  await app.inject({ method: 'POST', url: '/v1/auth/logout', headers });
  return { id: me.json<{ id: string }>().id, email };
}

/** Signs in with the test password; returns the token pair and the bearer header. */
export async function login(app: AppInstance, email: string, password = PASSWORD) {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email, password },
  });
  if (response.statusCode !== 200)
    throw new Error(`login failed: ${response.statusCode} ${response.body}`);
  const tokens = response.json<{ accessToken: string; refreshToken: string }>();
  return { ...tokens, headers: { authorization: `Bearer ${tokens.accessToken}` } };
}

/** Registers and signs in. */
export async function newUser(app: AppInstance, name = 'user') {
  const user = await register(app, name);
  return { ...user, ...(await login(app, user.email)) };
}
