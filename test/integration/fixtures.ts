// Factories and assertions shared by the API contract tests in this folder.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { BUILD_RUN } from '../../src/builds/build.jobs.js';
import { insertBuild, insertRelease } from '../../src/builds/build.repository.js';
import { DEPLOYMENT_RECONCILE } from '../../src/deployments/deployment.jobs.js';
import { inTransaction } from '../../src/platform/db/transaction.js';
import { ERROR_CODES } from '../../src/platform/errors.js';
import type { signUp, TestApp } from '../support/app.js';

export type User = Awaited<ReturnType<typeof signUp>>;
export type Role = 'owner' | 'admin' | 'developer' | 'readonly';
export type Body = Record<string, unknown>;

export const RANDOM_ID = '00000000-0000-4000-8000-000000000000';
/** argon2id at its lowest allowed memory: these tests sign up many users and test no hashing. */
export const FAST_HASHING = { SWITCHYARD_ARGON2_MEMORY_KIB: '7168' };
export const JSON_HEADERS = { 'content-type': 'application/json' };

let sequence = 0;

export const get = (url: string): InjectOptions => ({ method: 'GET', url });
export const post = (url: string, payload: object): InjectOptions => ({
  method: 'POST',
  url,
  payload,
});
export const patch = (url: string, payload: object): InjectOptions => ({
  method: 'PATCH',
  url,
  payload,
});
export const put = (url: string, payload: object): InjectOptions => ({
  method: 'PUT',
  url,
  payload,
});
export const del = (url: string): InjectOptions => ({ method: 'DELETE', url });
/** A text/plain body, as the .env import takes. */
export const postText = (url: string, payload: string): InjectOptions => ({
  method: 'POST',
  url,
  payload,
  headers: { 'content-type': 'text/plain' },
});

/** A name no other fixture in this process uses: `prefix-<n>-<random>`. */
export function uniqueName(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}-${randomUUID().slice(0, 6)}`;
}

/**
 * Asserts the one error body of the API: exactly `{ error: { code, message, requestId,
 * details? } }`, its code from the catalogue with the status the catalogue gives it, and the
 * request id equal to the `x-request-id` header. Returns the error for further checks.
 */
export function assertErrorEnvelope(response: LightMyRequestResponse, label = '') {
  const where = `${label} ${response.statusCode} ${response.body.slice(0, 300)}`;
  assert.match(String(response.headers['content-type']), /^application\/json/, where);
  const body = response.json<{
    error: { code: string; message: string; requestId: string; details?: unknown };
  }>();
  assert.deepEqual(Object.keys(body), ['error'], where);
  const keys = Object.keys(body.error).sort();
  const expected =
    'details' in body.error
      ? ['code', 'details', 'message', 'requestId']
      : ['code', 'message', 'requestId'];
  assert.deepEqual(keys, expected, where);
  assert.equal(typeof body.error.code, 'string', where);
  assert.equal(typeof body.error.message, 'string', where);
  assert.ok(body.error.message.length > 0, where);
  assert.ok(body.error.code in ERROR_CODES, `unknown code: ${where}`);
  assert.equal(
    ERROR_CODES[body.error.code as keyof typeof ERROR_CODES].status,
    response.statusCode,
    where,
  );
  assert.equal(body.error.requestId, response.headers['x-request-id'], where);
  assert.doesNotMatch(response.body, /\bat .+\.(ts|js):\d+/, `stack trace leaked: ${where}`);
  return body.error;
}

/** Asserts status and code, in the standard envelope. */
export function assertError(
  response: LightMyRequestResponse,
  status: number,
  code: string,
  label = '',
) {
  const error = assertErrorEnvelope(response, label);
  assert.equal(response.statusCode, status, `${label} ${response.body}`);
  assert.equal(error.code, code, `${label} ${response.body}`);
  return error;
}

/**
 * Readies the job queue the way a worker process does at startup, without working jobs:
 * an `api`-role app only sends. Returns the function that stops it again.
 */
export async function prepareJobQueue(t: TestApp): Promise<() => Promise<void>> {
  await t.deps.queue.start();
  await t.deps.queue.define(BUILD_RUN);
  await t.deps.queue.define(DEPLOYMENT_RECONCILE);
  return () => t.deps.queue.stop(5_000);
}

export interface ProjectFixture {
  id: string;
  slug: string;
  owner: User;
  serviceId: string;
}

/** A project of `owner` with one service, `web`, whose git URL passes the default policy. */
export async function createProject(
  t: TestApp,
  owner: User,
  slug = uniqueName('proj'),
): Promise<ProjectFixture> {
  const project = await t.app.inject({
    method: 'POST',
    url: '/v1/projects',
    headers: owner.headers,
    payload: { name: slug, slug },
  });
  assert.equal(project.statusCode, 201, project.body);
  const service = await t.app.inject({
    method: 'POST',
    url: `/v1/projects/${slug}/services`,
    headers: owner.headers,
    payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
  });
  assert.equal(service.statusCode, 201, service.body);
  return {
    id: project.json<{ id: string }>().id,
    slug,
    owner,
    serviceId: service.json<{ id: string }>().id,
  };
}

export async function addMember(
  t: TestApp,
  project: ProjectFixture,
  user: User,
  role: Role,
  extra: { environment?: string; expiresAt?: string } = {},
): Promise<void> {
  const response = await t.app.inject({
    method: 'POST',
    url: `/v1/projects/${project.slug}/members`,
    headers: project.owner.headers,
    payload: { email: user.email, role, ...extra },
  });
  assert.equal(response.statusCode, 201, response.body);
}

/**
 * A succeeded build and its release, written with the repositories as the build job would:
 * deploys need a release, and real builds need a worker and a git host.
 */
export async function insertReleaseFor(
  t: TestApp,
  serviceId: string,
  createdBy: string,
): Promise<{ buildId: string; releaseId: string }> {
  const db = t.deps.database.db;
  return inTransaction(db, async (trx) => {
    const build = await insertBuild(trx, { serviceId, ref: 'main', createdBy });
    const commitSha = createHash('sha1').update(build.id).digest('hex');
    const release = await insertRelease(trx, {
      serviceId,
      buildId: build.id,
      commitSha,
      digest: `sha256:${createHash('sha256').update(build.id).digest('hex')}`,
      artifactPath: `/artifacts/${build.id}`,
      kind: 'node',
      start: { command: 'node', args: ['server.js'] },
      config: {},
    });
    await trx
      .updateTable('builds')
      .set({ status: 'succeeded', commit_sha: commitSha })
      .where('id', '=', build.id)
      .execute();
    return { buildId: build.id, releaseId: release.id };
  });
}

/** A deployment row of a release, as the deploy route would write it, without a job. */
export async function insertDeploymentFor(
  t: TestApp,
  input: { serviceId: string; environmentId: string; releaseId: string },
): Promise<string> {
  const row = await t.deps.database.db
    .insertInto('deployments')
    .values({
      service_id: input.serviceId,
      environment_id: input.environmentId,
      release_id: input.releaseId,
      replicas: 1,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

export async function environmentId(
  t: TestApp,
  project: ProjectFixture,
  name: string,
): Promise<string> {
  const response = await t.app.inject({
    url: `/v1/projects/${project.slug}/environments/${name}`,
    headers: project.owner.headers,
  });
  assert.equal(response.statusCode, 200, response.body);
  return response.json<{ id: string }>().id;
}
