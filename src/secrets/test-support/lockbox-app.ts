import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { REDACTION } from '../../platform/logger.js';
import { loadConfig } from '../../platform/config.js';
import { createDependencies, type Dependencies } from '../../platform/dependencies.js';
import { buildApp, type AppInstance } from '../../platform/app.js';
import { startWorkers, type Workers } from '../../platform/workers.js';
import { inTransaction } from '../../platform/db/transaction.js';
import { insertBuild, insertRelease } from '../../builds/build.repository.js';
import { fakeResolver, signUp } from '../../../test/support/app.js';
import {
  createTestDatabase,
  type Backend,
  type TestDatabase,
} from '../../../test/support/database.js';
import type { RotationHooks } from '../rotation-runner.js';

/**
 * The whole product on a throwaway database, with every log line kept (as written, JSON) so
 * tests can search them. With `workers`, the queue, the local runtime and the router run too.
 */
export interface LockboxApp {
  app: AppInstance;
  deps: Dependencies;
  dataDir: string;
  logs: string[];
  workers: Workers | undefined;
  close(): Promise<void>;
}

export async function startLockboxApp(
  backend: Backend,
  options: {
    env?: Record<string, string>;
    workers?: boolean;
    rotationHooks?: RotationHooks;
    dataDir?: string;
    /** A database to use and leave alone, or `embedded`: PGlite in the data folder, kept. */
    database?: TestDatabase | 'embedded';
  } = {},
): Promise<LockboxApp> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'switchyard-lockbox-'));
  const isEmbedded = options.database === 'embedded';
  const given = options.database === 'embedded' ? undefined : options.database;
  const database = isEmbedded ? undefined : (given ?? (await createTestDatabase(backend)));
  const config = loadConfig({
    SWITCHYARD_DATA_DIR: dataDir,
    SWITCHYARD_ROLE: options.workers === true ? 'all' : 'api',
    SWITCHYARD_ALLOW_LOCAL_GIT: 'true',
    SWITCHYARD_ROUTER_PORT: '0',
    DEPLOY_HEALTH_TIMEOUT_MS: '8000',
    DEPLOY_DRAIN_MS: '500',
    // A restarted process takes the reconciler lease over quickly from a killed one.
    SWITCHYARD_HEARTBEAT_INTERVAL_MS: '300',
    SWITCHYARD_WORKER_STALE_MS: '1500',
    LOG_LEVEL: 'debug',
    ...options.env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((line) => line !== ''),
      );
      done();
    },
  });
  // The production logger's redaction (paths, then known values in the line), into `logs`.
  const logger = pino({ level: 'debug', ...REDACTION }, sink);
  const deps = await createDependencies(config, logger, {
    ...(database === undefined ? {} : { database: database.database }),
    resolver: fakeResolver,
    pollingIntervalSeconds: 0.5,
    ...(options.rotationHooks === undefined ? {} : { rotationHooks: options.rotationHooks }),
  });
  const app = await buildApp(deps);
  await app.ready();
  // As `serve` does in every role: API-only processes enqueue jobs too.
  if (options.workers !== true) await deps.queue.start();
  const workers = options.workers === true ? await startWorkers(deps) : undefined;
  return {
    app,
    deps,
    dataDir,
    logs,
    workers,
    async close() {
      await app.close();
      await (workers?.stop(5_000) ?? deps.queue.stop(5_000));
      await deps.close();
      if (given === undefined) await database?.drop();
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let sequence = 0;

/** An owner, a project (with its three environments) and one service. */
export async function seedProject(app: AppInstance) {
  sequence += 1;
  const owner = await signUp(app);
  const slug = `lockbox-${Date.now().toString(36)}-${sequence}`;
  const project = await app.inject({
    method: 'POST',
    url: '/v1/projects',
    headers: owner.headers,
    payload: { name: 'Lockbox', slug },
  });
  if (project.statusCode !== 201) throw new Error(`project: ${project.body}`);
  const service = await app.inject({
    method: 'POST',
    url: `/v1/projects/${slug}/services`,
    headers: owner.headers,
    payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
  });
  if (service.statusCode !== 201) throw new Error(`service: ${service.body}`);
  return {
    owner,
    slug,
    projectId: project.json<{ id: string }>().id,
    serviceId: service.json<{ id: string }>().id,
  };
}

/** Adds `user` to the project with `role` (optionally narrowed to one environment). */
export async function addMember(
  app: AppInstance,
  owner: { headers: Record<string, string> },
  slug: string,
  role: string,
  environment?: string,
) {
  const user = await signUp(app);
  const added = await app.inject({
    method: 'POST',
    url: `/v1/projects/${slug}/members`,
    headers: owner.headers,
    payload: { email: user.email, role, ...(environment === undefined ? {} : { environment }) },
  });
  if (added.statusCode !== 201) throw new Error(`member: ${added.body}`);
  return user;
}

/**
 * A small app: answers /healthz (500 when APP_HEALTH is `fail`), /env with the variables
 * whose names are listed in ENV_KEYS, and prints every variable named in ENV_KEYS at start —
 * the careless logging the runtime's redaction must catch.
 */
const APP_SOURCE = String.raw`
const http = require('node:http');
const keys = (process.env.ENV_KEYS || '').split(',').filter(Boolean);
for (const key of keys) console.log('booting with ' + key + '=' + process.env[key]);
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    const ok = process.env.APP_HEALTH !== 'fail';
    res.writeHead(ok ? 200 : 500);
    return res.end(ok ? 'ok' : 'sick');
  }
  const picked = {};
  for (const key of keys) picked[key] = process.env[key];
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(picked));
});
server.listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** A release of `serviceId` whose artifact is the small app above, with `config` variables. */
export async function seedRelease(
  deps: Dependencies,
  serviceId: string,
  userId: string,
  config: Record<string, string>,
) {
  const artifact = join(
    deps.config.dataDir,
    'artifacts',
    `app-${Date.now().toString(36)}-${++sequence}`,
  );
  mkdirSync(artifact, { recursive: true });
  writeFileSync(join(artifact, 'server.js'), APP_SOURCE);
  return inTransaction(deps.database.db, async (trx) => {
    const build = await insertBuild(trx, { serviceId, ref: 'main', createdBy: userId });
    return insertRelease(trx, {
      serviceId,
      buildId: build.id,
      commitSha: 'a'.repeat(40),
      digest: `sha256:${'b'.repeat(64)}`,
      artifactPath: artifact,
      kind: 'node',
      start: { command: process.execPath, args: ['server.js'] },
      config,
    });
  });
}

/** Polls until `probe` returns a value, or throws at the deadline. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
