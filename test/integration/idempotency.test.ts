import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import {
  assertError,
  createProject,
  insertReleaseFor,
  prepareJobQueue,
  uniqueName,
  type ProjectFixture,
  type User,
  FAST_HASHING,
} from './fixtures.js';

for (const backend of testBackends()) {
  describe(`Idempotency-Key on ${backend}`, () => {
    let t: TestApp;
    let stopQueue: () => Promise<void>;
    let owner: User;
    let project: ProjectFixture;

    const buildsUrl = () => `/v1/services/${project.serviceId}/builds`;
    const post = (
      url: string,
      key: string | undefined,
      payload: object,
      user: User = owner,
    ): Promise<LightMyRequestResponse> => {
      const options: InjectOptions = {
        method: 'POST',
        url,
        payload,
        headers: { ...user.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
      };
      return t.app.inject(options);
    };
    const buildCount = async () =>
      Number(
        (
          await t.deps.database.db
            .selectFrom('builds')
            .select((eb) => eb.fn.countAll<number>().as('count'))
            .where('service_id', '=', project.serviceId)
            .executeTakeFirstOrThrow()
        ).count,
      );

    before(async () => {
      t = await createTestApp(backend, FAST_HASHING);
      stopQueue = await prepareJobQueue(t);
      await signUp(t.app);
      owner = await signUp(t.app);
      project = await createProject(t, owner);
    });
    after(async () => {
      await stopQueue();
      await t.close();
    });

    it('answers a retried build with the first answer and builds once', async () => {
      const before = await buildCount();
      const key = uniqueName('build');
      const first = await post(buildsUrl(), key, { ref: 'main' });
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(first.headers['idempotent-replayed'], undefined);

      const retry = await post(buildsUrl(), key, { ref: 'main' });
      assert.equal(retry.statusCode, 202, retry.body);
      assert.equal(retry.headers['idempotent-replayed'], 'true');
      assert.deepEqual(retry.json(), first.json());
      assert.equal(await buildCount(), before + 1);

      const build = await t.app.inject({
        url: first.json<{ statusUrl: string }>().statusUrl,
        headers: owner.headers,
      });
      assert.equal(build.statusCode, 200);
      assert.equal(build.json<{ ref: string }>().ref, 'main');
    });

    it('builds again without a key, and for a new key', async () => {
      const before = await buildCount();
      const a = await post(buildsUrl(), undefined, {});
      const b = await post(buildsUrl(), undefined, {});
      const c = await post(buildsUrl(), uniqueName('fresh'), {});
      assert.deepEqual([a.statusCode, b.statusCode, c.statusCode], [202, 202, 202]);
      assert.equal(new Set([a, b, c].map((r) => r.json<{ id: string }>().id)).size, 3);
      assert.equal(await buildCount(), before + 3);
    });

    it('answers the same key with a different body or route with 409 IDEMPOTENCY_KEY_REUSED', async () => {
      const key = uniqueName('reused');
      assert.equal((await post(buildsUrl(), key, { ref: 'main' })).statusCode, 202);
      const before = await buildCount();
      assertError(await post(buildsUrl(), key, { ref: 'develop' }), 409, 'IDEMPOTENCY_KEY_REUSED');
      assertError(await post(buildsUrl(), key, {}), 409, 'IDEMPOTENCY_KEY_REUSED');
      const otherService = await createProject(t, owner);
      assertError(
        await post(`/v1/services/${otherService.serviceId}/builds`, key, { ref: 'main' }),
        409,
        'IDEMPOTENCY_KEY_REUSED',
      );
      assert.equal(await buildCount(), before);
    });

    it('keeps keys per user: another member using the same key gets a build of their own', async () => {
      const key = uniqueName('shared');
      const colleague = await signUp(t.app);
      await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${project.slug}/members`,
        headers: owner.headers,
        payload: { email: colleague.email, role: 'developer' },
      });
      const mine = await post(buildsUrl(), key, {});
      const theirs = await post(buildsUrl(), key, {}, colleague);
      assert.equal(theirs.statusCode, 202, theirs.body);
      assert.equal(theirs.headers['idempotent-replayed'], undefined);
      assert.notEqual(theirs.json<{ id: string }>().id, mine.json<{ id: string }>().id);
    });

    it('answers a malformed key with 400 VALIDATION_FAILED and builds nothing', async () => {
      const before = await buildCount();
      for (const key of ['', 'has space', 'x'.repeat(256), 'tab\there', 'ünï']) {
        assertError(
          await post(buildsUrl(), key, {}),
          400,
          'VALIDATION_FAILED',
          JSON.stringify(key),
        );
      }
      assert.equal(await buildCount(), before);
    });

    it('frees the key when the first attempt fails, so the retry can succeed', async () => {
      const key = uniqueName('retry');
      const url = `/v1/services/${project.serviceId}/deployments`;
      assertError(await post(url, key, { environment: 'staging' }), 422, 'RELEASE_UNAVAILABLE');
      await insertReleaseFor(t, project.serviceId, owner.id);
      const retried = await post(url, key, { environment: 'staging' });
      assert.equal(retried.statusCode, 202, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], undefined);
      const replayed = await post(url, key, { environment: 'staging' });
      assert.equal(replayed.headers['idempotent-replayed'], 'true');
      assert.equal(replayed.json<{ id: string }>().id, retried.json<{ id: string }>().id);
    });

    it('builds once when two requests with one key race', async () => {
      const before = await buildCount();
      const key = uniqueName('race');
      const answers = await Promise.all([
        post(buildsUrl(), key, {}),
        post(buildsUrl(), key, {}),
        post(buildsUrl(), key, {}),
      ]);
      for (const answer of answers) {
        if (answer.statusCode === 202) continue;
        assertError(answer, 409, 'IDEMPOTENCY_IN_PROGRESS');
        assert.equal(answer.headers['retry-after'], '1');
      }
      const ids = new Set(
        answers.filter((a) => a.statusCode === 202).map((a) => a.json<{ id: string }>().id),
      );
      assert.equal(ids.size, 1);
      assert.equal(await buildCount(), before + 1);
    });
  });
}
