import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import { loadConfig } from '../platform/config.js';
import { knownSecrets, REDACTED } from '../platform/known-secrets.js';
import { createGitCredentialSource, rememberConnectionPasswords } from './platform-credentials.js';
import { seedProject, startLockboxApp, type LockboxApp } from './test-support/lockbox-app.js';

for (const backend of testBackends()) {
  describe(`platform git credentials from Lockbox or a file on ${backend}`, () => {
    let t: LockboxApp;
    let dir: string;
    before(async () => {
      t = await startLockboxApp(backend);
      dir = mkdtempSync(join(tmpdir(), 'switchyard-platform-cred-'));
    });
    after(async () => {
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("uses the project's secret, its newest version at every build, and the file for other hosts", async () => {
      const { owner, slug, serviceId } = await seedProject(t.app);
      const url = `/v1/projects/${slug}/secrets/SWITCHYARD_GIT_CREDENTIALS`;
      const set = (value: string) =>
        t.app.inject({ method: 'PUT', url, headers: owner.headers, payload: { value } });
      assert.equal((await set('https://bot:token-one@github.com\n')).statusCode, 200);
      const file = join(dir, 'git-credentials');
      writeFileSync(file, 'https://ci:file-token@gitlab.com\n');
      const source = createGitCredentialSource({
        db: t.deps.database.db,
        logger: t.deps.logger,
        store: t.deps.lockbox.store,
        path: file,
      });

      assert.deepEqual(await source('https://github.com/acme/web.git', serviceId), {
        username: 'bot',
        password: 'token-one',
      });
      await set('https://bot:token-two@github.com\n');
      assert.equal(
        (await source('https://github.com/acme/web.git', serviceId))?.password,
        'token-two',
      );
      assert.equal(
        (await source('https://gitlab.com/acme/api.git', serviceId))?.password,
        'file-token',
      );
      writeFileSync(file, 'https://ci:file-token-rotated@gitlab.com\n');
      assert.equal(
        (await source('https://gitlab.com/acme/api.git', serviceId))?.password,
        'file-token-rotated',
      );
      assert.equal(await source('https://bitbucket.org/acme/x.git', serviceId), undefined);
    });

    it('never delivers it to workloads, and ignores it outside the project scope', async () => {
      const { owner, slug, serviceId } = await seedProject(t.app);
      await t.app.inject({
        method: 'PUT',
        url: `/v1/services/${serviceId}/secrets/SWITCHYARD_GIT_CREDENTIALS`,
        headers: owner.headers,
        payload: { value: 'https://x:service-level@github.com' },
      });
      await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/SWITCHYARD_GIT_CREDENTIALS`,
        headers: owner.headers,
        payload: { value: 'https://x:project-level@github.com' },
      });
      await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/APP_SECRET`,
        headers: owner.headers,
        payload: { value: 'for-the-app' },
      });
      const environment = (
        await t.app.inject({
          url: `/v1/projects/${slug}/environments/production`,
          headers: owner.headers,
        })
      ).json<{ id: string }>();

      const pins = await t.deps.lockbox.delivery.currentPins({
        serviceId,
        environmentId: environment.id,
      });
      assert.equal(Object.keys(pins).length, 1, 'only APP_SECRET reaches the workload');
      const source = createGitCredentialSource({
        db: t.deps.database.db,
        logger: t.deps.logger,
        store: t.deps.lockbox.store,
        path: undefined,
      });
      assert.equal(
        (await source('https://github.com/acme/web.git', serviceId))?.password,
        'project-level',
      );

      const otherPlatformName = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/SWITCHYARD_OTHER`,
        headers: owner.headers,
        payload: { value: 'x' },
      });
      assert.equal(otherPlatformName.json().error.code, 'SECRET_VALUE_INVALID');
    });
  });
}

describe('connection passwords', () => {
  it('are known secret values from start-up, as written and percent-decoded', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://app:db%2Fpass-word@db.internal:5432/switchyard',
      REDIS_URL: 'redis://:redis-pass-word@cache.internal:6379/0',
      SWITCHYARD_JWT_PRIVATE_KEY_PATH: '/dev/null',
    });
    rememberConnectionPasswords(config);
    assert.equal(
      knownSecrets.scrub('db/pass-word db%2Fpass-word redis-pass-word'),
      `${REDACTED} ${REDACTED} ${REDACTED}`,
    );
  });
});
