import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { pino } from 'pino';
import { loadConfig } from '../src/platform/config.js';
import { createLogger } from '../src/platform/logger.js';
import { createDependencies, type Dependencies } from '../src/platform/dependencies.js';
import { buildApp, type AppInstance } from '../src/platform/app.js';
import type { Db } from '../src/platform/db/transaction.js';
import { fakeResolver, signUp } from '../test/support/app.js';
import {
  constantJsonServer,
  listenLocal,
  verifyAndAccessQueryServer,
  verifyAndSelectServer,
  type VerifySettings,
} from './baselines.js';
import { measureBreakdown } from './breakdown.js';
import type { BenchEnvironment } from './environments.js';
import { compare, measure, type LoadTarget } from './load.js';
import type { BenchContext } from './settings.js';
import { countStatements } from './statement-count.js';

export const SERVICE_READ_TARGET = 0.85;
export const HEALTHZ_TARGET = 0.9;
const STATEMENT_SAMPLE_REQUESTS = 50;

interface RunningApi {
  app: AppInstance;
  deps: Dependencies;
  url: string;
}

/** The app with its data, and what a bare route needs to do the same work. */
interface Fixture {
  api: RunningApi;
  backend: string;
  serviceId: string;
  token: string;
  headers: Record<string, string>;
  db: Db;
  verify: VerifySettings;
  /** PostgreSQL backends serving this database: their CPU counts as the servers'. */
  databasePids: () => Promise<number[]>;
}

/** The real app as `serve` builds it (role api), logging at info to /dev/null. */
async function startApi(environment: BenchEnvironment): Promise<RunningApi> {
  const config = loadConfig({ ...environment.env, SWITCHYARD_ROLE: 'api', LOG_LEVEL: 'info' });
  const destination = pino.destination({ dest: '/dev/null', sync: true });
  const logger = createLogger({ level: 'info' }, destination);
  const deps = await createDependencies(config, logger, { resolver: fakeResolver });
  const app = await buildApp(deps);
  const url = await listenLocal(app);
  return { app, deps, url };
}

/** A user owning one project with one service; returns its id and the user's token. */
async function seed(app: AppInstance): Promise<{ serviceId: string; token: string }> {
  const owner = await signUp(app);
  const slug = `bench-${Date.now()}`;
  const headers = owner.headers;
  const project = await app.inject({
    method: 'POST',
    url: '/v1/projects',
    headers,
    payload: { name: 'Bench', slug },
  });
  if (project.statusCode !== 201) throw new Error(`project not created: ${project.body}`);
  const service = await app.inject({
    method: 'POST',
    url: `/v1/projects/${slug}/services`,
    headers,
    payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
  });
  if (service.statusCode !== 201) throw new Error(`service not created: ${service.body}`);
  return { serviceId: service.json<{ id: string }>().id, token: owner.tokens.accessToken };
}

async function withServer<T>(
  server: FastifyInstance,
  work: (url: string) => Promise<T>,
): Promise<T> {
  const url = await listenLocal(server);
  try {
    return await work(url);
  } finally {
    await server.close();
  }
}

async function fixtureFor(api: RunningApi, backend: string): Promise<Fixture> {
  const { serviceId, token } = await seed(api.app);
  const { config, keys, database } = api.deps;
  const db = database.db;
  const databasePids = async () => {
    if (database.kind !== 'postgres') return [];
    const backends = await sql<{ pid: number }>`
      select pid from pg_stat_activity where datname = current_database()`.execute(db);
    return backends.rows.map((row) => row.pid);
  };
  const verify = {
    publicKey: keys.signing.publicKey,
    issuer: config.auth.issuer,
    audience: config.auth.audience,
  };
  const headers = { authorization: `Bearer ${token}` };
  return { api, backend, serviceId, token, headers, db, verify, databasePids };
}

/**
 * Parts 1 and 2 on one backend: the authenticated service read against a bare verify+select,
 * /healthz against a bare constant route, and a diagnostic split of where the gap goes.
 */
export async function benchApi(
  environment: BenchEnvironment,
  context: BenchContext,
): Promise<void> {
  const api = await startApi(environment);
  try {
    const fixture = await fixtureFor(api, environment.backend);
    await benchServiceRead(fixture, context);
    await benchHealthz(fixture, context);
  } finally {
    await api.app.close();
    await api.deps.close();
  }
}

async function benchServiceRead(fixture: Fixture, context: BenchContext): Promise<void> {
  const { api, db, verify, serviceId, headers, databasePids: helperPids } = fixture;
  const { report, load, settings } = context;
  const section = `GET /v1/services/:id (${fixture.backend})`;
  const path = `/services/${serviceId}`;
  // Before any load: requests still queued when a load run ends would be counted too.
  await noteStatementsAndSteps(fixture, context);

  const subject: LoadTarget = {
    label: 'switchyard app',
    url: `${api.url}/v1${path}`,
    headers,
    helperPids,
  };
  const read = await withServer(verifyAndSelectServer(db, verify), (url) => {
    const baseline = {
      label: 'bare: verify + 1 select',
      url: `${url}${path}`,
      headers,
      helperPids,
    };
    return compare(load, subject, baseline, settings);
  });
  report.addComparison(section, read, SERVICE_READ_TARGET);

  const accessQuery = await withServer(verifyAndAccessQueryServer(db, verify), (url) => {
    const target = {
      label: "bare: verify + app's access query",
      url: `${url}${path}`,
      headers,
      helperPids,
    };
    return measure(load, target, settings);
  });
  report.addFigure(section, accessQuery);
  report.addRatio(`${section}: bare access query ÷ bare select`, accessQuery, read.baseline);
  report.addRatio(`${section}: app ÷ bare access query`, read.subject, accessQuery);
}

/** How many statements the route sends, and each step's cost one request at a time. */
async function noteStatementsAndSteps(fixture: Fixture, context: BenchContext): Promise<void> {
  const { api, serviceId, headers } = fixture;
  const url = `/v1/services/${serviceId}`;
  const statements = await countStatements(async () => {
    for (let i = 0; i < STATEMENT_SAMPLE_REQUESTS; i++) {
      const response = await api.app.inject({ url, headers });
      if (response.statusCode !== 200)
        throw new Error(`${url} answered ${response.statusCode}: ${response.body}`);
    }
  });
  const steps = await measureBreakdown(fixture.db, fixture.verify, fixture.token, serviceId);
  context.report.addNote(
    `${fixture.backend}: the app sends ${(statements / STATEMENT_SAMPLE_REQUESTS).toFixed(2)} SQL statements ` +
      `per service read (baseline: 1). One request at a time, mean µs: JWT verify ${steps.verifyUs.toFixed(0)}, ` +
      `select by id ${steps.selectByIdUs.toFixed(0)}, access query ${steps.findServiceAccessUs.toFixed(0)}`,
  );
}

async function benchHealthz(fixture: Fixture, context: BenchContext): Promise<void> {
  const subject = { label: 'switchyard /healthz', url: `${fixture.api.url}/healthz` };
  const health = await withServer(constantJsonServer(), (url) =>
    compare(
      context.load,
      subject,
      { label: 'bare: constant JSON', url: `${url}/healthz` },
      context.settings,
    ),
  );
  context.report.addComparison(`/healthz (${fixture.backend})`, health, HEALTHZ_TARGET);
}
