import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { startLockboxApp, type LockboxApp } from './test-support/lockbox-app.js';
import { deployService, liveEnv, rotate, settled } from './test-support/rotation-bench.js';

for (const backend of testBackends()) {
  describe(`secret delivery and rotation on ${backend}`, () => {
    let t: LockboxApp;
    before(async () => {
      t = await startLockboxApp(backend, { workers: true });
    });
    after(async () => t.close());

    it('gives workloads secrets over variables, the narrowest scope winning', async () => {
      const put = (url: string, headers: Record<string, string>, value: string) =>
        t.app
          .inject({ method: 'PUT', url, headers, payload: { value } })
          .then((r) => assert.equal(r.statusCode, 200, r.body));
      const service = await deployService(t.app, t.deps, {
        envKeys: ['ALL', 'ENV_AND_PROJECT', 'ONLY_PROJECT', 'ONLY_CONFIG'],
        config: { ALL: 'from-config', ONLY_CONFIG: 'config-only' },
        secrets: async ({ slug, serviceId, headers }) => {
          for (const name of ['ALL', 'ENV_AND_PROJECT', 'ONLY_PROJECT'])
            await put(`/v1/projects/${slug}/secrets/${name}`, headers, `project-${name}`);
          for (const name of ['ALL', 'ENV_AND_PROJECT'])
            await put(
              `/v1/projects/${slug}/environments/production/secrets/${name}`,
              headers,
              `env-${name}`,
            );
          await put(
            `/v1/projects/${slug}/environments/staging/secrets/ALL`,
            headers,
            'staging-only',
          );
          await put(`/v1/services/${serviceId}/secrets/ALL`, headers, 'service-ALL');
        },
      });
      assert.deepEqual(await liveEnv(t.app, t.deps, service), {
        ALL: 'service-ALL',
        ENV_AND_PROJECT: 'env-ENV_AND_PROJECT',
        ONLY_PROJECT: 'project-ONLY_PROJECT',
        ONLY_CONFIG: 'config-only',
      });
    });

    it('rotates a secret: new version live on new instances, the old one superseded, history kept', async () => {
      const service = await deployService(t.app, t.deps, {
        envKeys: ['DB_PASSWORD'],
        secrets: async ({ serviceId, headers }) => {
          await t.app.inject({
            method: 'PUT',
            url: `/v1/services/${serviceId}/secrets/DB_PASSWORD`,
            headers,
            payload: { value: 'old-pass' },
          });
        },
      });
      const url = `/v1/services/${service.serviceId}/secrets/DB_PASSWORD`;
      const rotationId = await rotate(t.app, service.headers, url, { value: 'new-pass' });
      const view = await settled(t.app, service.headers, rotationId);

      assert.equal(view.state, 'succeeded', view.failureReason ?? '');
      assert.deepEqual([view.previousVersion, view.newVersion], [1, 2]);
      assert.equal(view.targets.length, 1);
      assert.notEqual(view.targets[0]?.newDeploymentId, service.deploymentId);
      assert.deepEqual(await liveEnv(t.app, t.deps, service), { DB_PASSWORD: 'new-pass' });
      const old = (
        await t.app.inject({
          url: `/v1/deployments/${service.deploymentId}`,
          headers: service.headers,
        })
      ).json();
      assert.equal(old.status, 'superseded');
      assert.deepEqual(
        t.deps.runtime?.status(service.deploymentId),
        [],
        'the old instances were drained',
      );

      const versions = (
        await t.app.inject({ url: `${url}/versions`, headers: service.headers })
      ).json();
      assert.deepEqual(
        versions.data.map((v: { version: number; state: string }) => [v.version, v.state]),
        [
          [2, 'active'],
          [1, 'superseded'],
        ],
      );
      const bySecret = (
        await t.app.inject({ url: `${url}/rotations`, headers: service.headers })
      ).json();
      const byService = (
        await t.app.inject({
          url: `/v1/services/${service.serviceId}/secret-rotations`,
          headers: service.headers,
        })
      ).json();
      assert.deepEqual(
        bySecret.data.map((r: { id: string }) => r.id),
        [rotationId],
      );
      assert.deepEqual(
        byService.data.map((r: { id: string }) => r.id),
        [rotationId],
      );
    });

    it('rolls back when the new value makes instances unhealthy, and records why', async () => {
      const service = await deployService(t.app, t.deps, {
        envKeys: ['APP_HEALTH'],
        secrets: async ({ slug, headers }) => {
          await t.app.inject({
            method: 'PUT',
            url: `/v1/projects/${slug}/secrets/APP_HEALTH`,
            headers,
            payload: { value: 'ok' },
          });
        },
      });
      const url = `/v1/projects/${service.slug}/secrets/APP_HEALTH`;
      const view = await settled(
        t.app,
        service.headers,
        await rotate(t.app, service.headers, url, { value: 'fail' }),
      );

      assert.equal(view.state, 'rolled_back');
      assert.match(view.failureReason ?? '', /did not become healthy/);
      const secret = (await t.app.inject({ url, headers: service.headers })).json();
      assert.equal(secret.currentVersion, 1);
      const versions = (
        await t.app.inject({ url: `${url}/versions`, headers: service.headers })
      ).json();
      assert.deepEqual(
        versions.data.map((v: { state: string }) => v.state),
        ['rolled_back', 'active'],
      );
      const live = (
        await t.app.inject({
          url: `/v1/services/${service.serviceId}/status?environment=production`,
          headers: service.headers,
        })
      ).json();
      assert.equal(
        live.deployment.id,
        service.deploymentId,
        'the old deployment never stopped serving',
      );
      assert.equal(live.isHealthy, true);
      assert.deepEqual(await liveEnv(t.app, t.deps, service), { APP_HEALTH: 'ok' });
    });

    it('generates a value when none is given, and refuses a second rotation while one runs', async () => {
      const service = await deployService(t.app, t.deps, {
        envKeys: ['TOKEN'],
        secrets: async ({ serviceId, headers }) => {
          await t.app.inject({
            method: 'PUT',
            url: `/v1/services/${serviceId}/secrets/TOKEN`,
            headers,
            payload: { value: 'seed' },
          });
        },
      });
      const url = `/v1/services/${service.serviceId}/secrets/TOKEN`;
      const rotationId = await rotate(t.app, service.headers, url, { generateBytes: 24 });
      const second = await t.app.inject({
        method: 'POST',
        url: `${url}/rotate`,
        headers: service.headers,
        payload: { value: 'x' },
      });
      const write = await t.app.inject({
        method: 'PUT',
        url,
        headers: service.headers,
        payload: { value: 'y' },
      });
      const view = await settled(t.app, service.headers, rotationId);

      assert.equal(second.json().error.code, 'SECRET_ROTATION_RUNNING');
      assert.equal(write.json().error.code, 'SECRET_ROTATION_RUNNING');
      assert.equal(view.state, 'succeeded', view.failureReason ?? '');
      const value = (await t.app.inject({ url: `${url}/value`, headers: service.headers })).json()
        .value as string;
      assert.match(value, /^[A-Za-z0-9_-]{32}$/);
      assert.deepEqual(await liveEnv(t.app, t.deps, service), { TOKEN: value });
    });
  });
}
