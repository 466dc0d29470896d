import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/platform/config.js';
import { createDependencies, type Dependencies } from '../../src/platform/dependencies.js';
import { buildApp, type AppInstance } from '../../src/platform/app.js';
import type { Resolver } from '../../src/platform/url-guard.js';
import { createTestDatabase, type Backend, type TestDatabase } from './database.js';

export interface TestApp {
  app: AppInstance;
  deps: Dependencies;
  dataDir: string;
  close(): Promise<void>;
}

/** Public addresses for names tests use; nothing in tests resolves real DNS. */
export const fakeResolver: Resolver = async (host) => {
  if (host === 'github.com' || host === 'gitlab.com') return ['140.82.112.3'];
  if (host === 'internal.example') return ['10.0.0.5'];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
};

/**
 * The API on a fresh throwaway database of the given backend, with workloads off (role
 * `api`) unless `env` says otherwise. Requests go through `app.inject`. `extend` may add
 * routes of the test's own before the app is ready.
 */
export async function createTestApp(
  backend: Backend,
  env: Record<string, string> = {},
  extend?: (app: AppInstance) => void,
): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchyard-app-'));
  const testDb: TestDatabase = await createTestDatabase(backend);
  const config = loadConfig({
    SWITCHYARD_DATA_DIR: dataDir,
    SWITCHYARD_ROLE: 'api',
    SWITCHYARD_ALLOW_LOCAL_GIT: 'true',
    // Tests build from repositories in temp folders, named by members as well as admins.
    SWITCHYARD_GIT_LOCAL_ROOTS: tmpdir(),
    LOG_LEVEL: 'silent',
    // Every request of a test comes from one address; tests of the limits set their own.
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '1000000',
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '1000000',
    ...env,
  });
  const logger = pino({ level: env['LOG_LEVEL'] ?? 'silent' });
  const deps = await createDependencies(config, logger, {
    database: testDb.database,
    resolver: fakeResolver,
  });
  const app = await buildApp(deps);
  extend?.(app);
  await app.ready();
  return {
    app,
    deps,
    dataDir,
    async close() {
      await app.close();
      await deps.close();
      await testDb.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** Registers and signs in a fresh user; returns the bearer header to send. */
export async function signUp(app: AppInstance, overrides: { email?: string; name?: string } = {}) {
  counter += 1;
  const email = overrides.email ?? `user${counter}-${Date.now()}@example.com`;
  const password = 'correct horse battery staple';
  const registered = await app.inject({
    method: 'POST',
    url: '/v1/auth/register',
    payload: { email, password, name: overrides.name ?? `User ${counter}` },
  });
  if (registered.statusCode !== 202) throw new Error(`register failed: ${registered.body}`);
  const login = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email, password },
  });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.body}`);
  const tokens = login.json<{ accessToken: string; refreshToken: string }>();
  const headers = { authorization: `Bearer ${tokens.accessToken}` };
  const me = await app.inject({ method: 'GET', url: '/v1/me', headers });
  return { id: me.json<{ id: string }>().id, email, password, tokens, headers };
}
