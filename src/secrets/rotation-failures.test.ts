import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import type { RotationStep } from './rotation-runner.js';
import { startLockboxApp, type LockboxApp } from './test-support/lockbox-app.js';
import { deployService, liveEnv, rotate, settled } from './test-support/rotation-bench.js';

const STEPS: RotationStep[] = ['write', 'roll', 'verify', 'complete'];

for (const backend of testBackends()) {
  describe(`secret rotation with a failure injected at each step on ${backend}`, () => {
    let t: LockboxApp;
    // The rotation to fail, and before which step.
    let inject: { rotationSecret: string; step: RotationStep } | undefined;

    before(async () => {
      t = await startLockboxApp(backend, {
        workers: true,
        rotationHooks: {
          beforeStep(step, rotation) {
            if (inject?.step === step && inject.rotationSecret === rotation.secret_id) {
              throw new Error(`injected failure before ${step}`);
            }
          },
        },
      });
    });
    after(async () => t.close());

    for (const step of STEPS) {
      it(`keeps the old version live and the workloads healthy when ${step} fails`, async () => {
        const service = await deployService(t.app, t.deps, {
          envKeys: ['API_KEY'],
          secrets: async ({ slug, headers }) => {
            await t.app.inject({
              method: 'PUT',
              url: `/v1/projects/${slug}/environments/production/secrets/API_KEY`,
              headers,
              payload: { value: 'key-v1' },
            });
          },
        });
        const url = `/v1/projects/${service.slug}/environments/production/secrets/API_KEY`;
        const secretId = (await t.app.inject({ url, headers: service.headers })).json<{
          id: string;
        }>().id;
        inject = { rotationSecret: secretId, step };

        const view = await settled(
          t.app,
          service.headers,
          await rotate(t.app, service.headers, url, { value: 'key-v2' }),
        );

        assert.equal(view.state, 'rolled_back');
        assert.equal(view.failureReason, `injected failure before ${step}`);
        const secret = (await t.app.inject({ url, headers: service.headers })).json();
        assert.equal(secret.currentVersion, 1, 'the previous version is current again');
        const current = (
          await t.app.inject({ url: `${url}/value`, headers: service.headers })
        ).json();
        assert.equal(current.value, 'key-v1');
        if (step !== 'write') {
          const versions = (
            await t.app.inject({ url: `${url}/versions`, headers: service.headers })
          ).json();
          assert.deepEqual(
            versions.data.map((v: { version: number; state: string }) => [v.version, v.state]),
            [
              [2, 'rolled_back'],
              [1, 'active'],
            ],
          );
        }

        const status = (
          await t.app.inject({
            url: `/v1/services/${service.serviceId}/status?environment=production`,
            headers: service.headers,
          })
        ).json();
        assert.equal(status.isHealthy, true);
        assert.deepEqual(await liveEnv(t.app, t.deps, service), { API_KEY: 'key-v1' });
        // Steps after the switch restore the values on new instances; earlier ones never left the old.
        const switched = step === 'verify' || step === 'complete';
        assert.equal(status.deployment.id === service.deploymentId, !switched);
        if (switched) assert.equal(status.deployment.id, view.targets[0]?.restoreDeploymentId);
      });
    }
  });
}
