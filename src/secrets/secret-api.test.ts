import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { after, before, describe, it } from 'node:test';
import { testBackends } from '../../test/support/database.js';
import {
  addMember,
  seedProject,
  startLockboxApp,
  type LockboxApp,
} from './test-support/lockbox-app.js';

interface AuditLine {
  audit?: string;
  action?: string;
  actor?: string;
  name?: string;
  version?: number;
  requestId?: string;
}

for (const backend of testBackends()) {
  describe(`secrets API on ${backend}`, () => {
    let t: LockboxApp;
    before(async () => {
      t = await startLockboxApp(backend);
    });
    after(async () => t.close());

    const audits = () =>
      t.logs
        .map((line) => JSON.parse(line) as AuditLine)
        .filter((line) => line.audit === 'secret.access');

    it('keeps every version byte-exact and lists names and versions, never values', async () => {
      const { owner, slug } = await seedProject(t.app);
      const base = `/v1/projects/${slug}/secrets/TLS_KEY`;
      const pem = '-----BEGIN KEY-----\nAbC+/=\n\ttabbed  \r\n-----END KEY-----\n';
      const binary = Buffer.concat([randomBytes(64), Buffer.from([0, 255, 254])]);
      const first = await t.app.inject({
        method: 'PUT',
        url: base,
        headers: owner.headers,
        payload: { value: pem },
      });
      assert.equal(first.statusCode, 200, first.body);
      assert.equal(first.json().currentVersion, 1);
      const second = await t.app.inject({
        method: 'PUT',
        url: base,
        headers: owner.headers,
        payload: { valueBase64: binary.toString('base64') },
      });
      assert.equal(second.json().currentVersion, 2);

      const list = await t.app.inject({
        url: `/v1/projects/${slug}/secrets`,
        headers: owner.headers,
      });
      assert.equal(list.statusCode, 200);
      assert.deepEqual(
        list
          .json()
          .data.map((s: { name: string; currentVersion: number }) => [s.name, s.currentVersion]),
        [['TLS_KEY', 2]],
      );
      assert.ok(!list.body.includes('BEGIN KEY') && !list.body.includes(binary.toString('base64')));
      assert.equal(list.json().data[0].value, undefined);

      const current = await t.app.inject({ url: `${base}/value`, headers: owner.headers });
      assert.equal(current.headers['cache-control'], 'no-store');
      assert.deepEqual(Buffer.from(current.json().valueBase64, 'base64'), binary);
      assert.equal(current.json().value, undefined, 'bytes that are not UTF-8 come as base64 only');
      const old = await t.app.inject({ url: `${base}/value?version=1`, headers: owner.headers });
      assert.equal(old.json().value, pem);
      assert.equal(old.json().isCurrent, false);
    });

    it('records who read and wrote which secret and version, with the request id', async () => {
      const { owner, slug } = await seedProject(t.app);
      const url = `/v1/projects/${slug}/secrets/API_TOKEN`;
      await t.app.inject({
        method: 'PUT',
        url,
        headers: owner.headers,
        payload: { value: 'tok-audited-1' },
      });
      await t.app.inject({
        url: `${url}/value`,
        headers: { ...owner.headers, 'x-request-id': 'read-req-42' },
      });

      const mine = audits().filter((line) => line.name === 'API_TOKEN' && line.actor === owner.id);
      assert.deepEqual(
        mine.map((line) => [line.action, line.version]),
        [
          ['write', 1],
          ['read', 1],
        ],
      );
      assert.equal(mine[1]?.requestId, 'read-req-42');
      assert.ok(
        !t.logs.some((line) => line.includes('tok-audited-1')),
        'the value is in no log line',
      );
    });

    it('restores an earlier version and lets only an Owner destroy old ones', async () => {
      const { owner, slug } = await seedProject(t.app);
      const admin = await addMember(t.app, owner, slug, 'admin');
      const url = `/v1/projects/${slug}/environments/production/secrets/DB_PASSWORD`;
      for (const value of ['one', 'two', 'three'])
        await t.app.inject({ method: 'PUT', url, headers: owner.headers, payload: { value } });

      const restored = await t.app.inject({
        method: 'POST',
        url: `${url}/restore`,
        headers: admin.headers,
        payload: { version: 1 },
      });
      assert.equal(restored.json().currentVersion, 1);
      assert.equal(
        (await t.app.inject({ url: `${url}/value`, headers: admin.headers })).json().value,
        'one',
      );

      const byAdmin = await t.app.inject({
        method: 'POST',
        url: `${url}/destroy`,
        headers: admin.headers,
        payload: { versions: [2] },
      });
      assert.equal(byAdmin.statusCode, 403);
      const current = await t.app.inject({
        method: 'POST',
        url: `${url}/destroy`,
        headers: owner.headers,
        payload: { versions: [1] },
      });
      assert.equal(current.json().error.code, 'SECRET_VERSION_CURRENT');
      const destroyed = await t.app.inject({
        method: 'POST',
        url: `${url}/destroy`,
        headers: owner.headers,
        payload: { versions: [2, 3] },
      });
      assert.deepEqual(destroyed.json().destroyed, [2, 3]);

      const gone = await t.app.inject({ url: `${url}/value?version=2`, headers: owner.headers });
      assert.equal(gone.statusCode, 404);
      assert.equal(gone.json().error.code, 'SECRET_VERSION_NOT_FOUND');
      const versions = await t.app.inject({ url: `${url}/versions`, headers: owner.headers });
      assert.deepEqual(
        versions
          .json()
          .data.map((v: { version: number; state: string; isCurrent: boolean }) => [
            v.version,
            v.state,
            v.isCurrent,
          ]),
        [
          [3, 'destroyed', false],
          [2, 'destroyed', false],
          [1, 'active', true],
        ],
      );
    });

    it('lets Developers use service secrets only, and ReadOnly list without reading', async () => {
      const { owner, slug, serviceId } = await seedProject(t.app);
      const developer = await addMember(t.app, owner, slug, 'developer');
      const reader = await addMember(t.app, owner, slug, 'readonly');
      const serviceUrl = `/v1/services/${serviceId}/secrets/STRIPE_KEY`;

      const devWrite = await t.app.inject({
        method: 'PUT',
        url: serviceUrl,
        headers: developer.headers,
        payload: { value: 'sk_dev' },
      });
      assert.equal(devWrite.statusCode, 200, devWrite.body);
      assert.equal(
        (await t.app.inject({ url: `${serviceUrl}/value`, headers: developer.headers })).json()
          .value,
        'sk_dev',
      );
      for (const url of [
        `/v1/projects/${slug}/secrets/SHARED`,
        `/v1/projects/${slug}/environments/staging/secrets/SHARED`,
      ]) {
        const denied = await t.app.inject({
          method: 'PUT',
          url,
          headers: developer.headers,
          payload: { value: 'x' },
        });
        assert.equal(denied.statusCode, 403, url);
        assert.equal(denied.json().error.code, 'FORBIDDEN');
      }

      const listed = await t.app.inject({
        url: `/v1/services/${serviceId}/secrets`,
        headers: reader.headers,
      });
      assert.equal(listed.json().data[0].name, 'STRIPE_KEY');
      const readDenied = await t.app.inject({
        url: `${serviceUrl}/value`,
        headers: reader.headers,
      });
      assert.equal(readDenied.statusCode, 403);
      assert.ok(!readDenied.body.includes('sk_dev'));
    });

    it('answers a stranger exactly as for a service that does not exist', async () => {
      const { owner, serviceId } = await seedProject(t.app);
      await t.app.inject({
        method: 'PUT',
        url: `/v1/services/${serviceId}/secrets/K`,
        headers: owner.headers,
        payload: { value: 'v' },
      });
      const other = await seedProject(t.app);
      const foreign = await t.app.inject({
        url: `/v1/services/${serviceId}/secrets/K/value`,
        headers: other.owner.headers,
      });
      assert.equal(foreign.statusCode, 404);
      assert.equal(foreign.json().error.code, 'SERVICE_NOT_FOUND');
    });

    it('refuses reserved names and values out of bounds without echoing them', async () => {
      const { owner, slug } = await seedProject(t.app);
      const reserved = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/PORT`,
        headers: owner.headers,
        payload: { value: 'leak-me-1' },
      });
      assert.equal(reserved.json().error.code, 'SECRET_VALUE_INVALID');
      const both = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/OK`,
        headers: owner.headers,
        payload: { value: 'leak-me-2', valueBase64: 'bGVhaw==' },
      });
      assert.equal(both.statusCode, 400);
      const huge = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/OK`,
        headers: owner.headers,
        payload: { value: `leak-me-3${'x'.repeat(70_000)}` },
      });
      assert.equal(huge.statusCode, 400);
      for (const response of [reserved, both, huge]) assert.ok(!response.body.includes('leak-me'));
    });

    it('replays a rotation request by Idempotency-Key without keeping a hash of the value', async () => {
      const { owner, slug } = await seedProject(t.app);
      const url = `/v1/projects/${slug}/secrets/ROTATE_ME`;
      await t.app.inject({ method: 'PUT', url, headers: owner.headers, payload: { value: 'v1' } });
      const payload = { value: 'low-entropy-2' };
      const headers = { ...owner.headers, 'idempotency-key': `rotate-${slug}` };
      const first = await t.app.inject({ method: 'POST', url: `${url}/rotate`, headers, payload });
      const again = await t.app.inject({ method: 'POST', url: `${url}/rotate`, headers, payload });
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(again.json().id, first.json().id);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      const other = await t.app.inject({
        method: 'POST',
        url: `${url}/rotate`,
        headers,
        payload: { value: 'different' },
      });
      assert.equal(other.json().error.code, 'IDEMPOTENCY_KEY_REUSED');

      const plainHash = createHash('sha256')
        .update(`POST\0${url}/rotate\0${JSON.stringify(payload)}`)
        .digest('hex');
      const stored = await sql<{
        request_hash: string;
      }>`SELECT request_hash FROM idempotency_keys WHERE key = ${`rotate-${slug}`}`.execute(
        t.deps.database.db,
      );
      assert.equal(stored.rows.length, 1);
      assert.notEqual(stored.rows[0]?.request_hash, plainHash);
    });

    it('stores values encrypted at rest, each naming its master key', async () => {
      const { owner, slug } = await seedProject(t.app);
      await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/AT_REST`,
        headers: owner.headers,
        payload: { value: 'plain-text-marker-991' },
      });
      const rows = await t.deps.database.db
        .withTables<{
          secret_versions: { key_id: string | null; ciphertext: Buffer | null; state: string };
        }>()
        .selectFrom('secret_versions')
        .select(['key_id', 'ciphertext'])
        .where('state', '<>', 'destroyed')
        .execute();
      assert.ok(rows.length > 0);
      for (const row of rows) {
        assert.equal(row.key_id, t.deps.lockbox.keys.current.id);
        assert.ok(
          row.ciphertext !== null &&
            !row.ciphertext.toString('latin1').includes('plain-text-marker'),
        );
      }
    });
  });
}
