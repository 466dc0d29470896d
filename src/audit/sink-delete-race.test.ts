import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestApp, signUp, type TestApp } from '../../test/support/app.js';
import { testBackends } from '../../test/support/database.js';
import { verifyChain } from './audit-verify.js';
import { metricValue } from './test-support/events.js';

type User = Awaited<ReturnType<typeof signUp>>;
const SINKS = 24;
// Deletes in flight at once; each sink is deleted twice at the same moment.
const DELETERS = 4;

/**
 * Deleting a sink cascades to its outbox rows while every event written meanwhile fans out
 * to the sinks that are active: the two must not deadlock, nor may a fan-out insert a row for
 * a sink whose deletion commits under it. Whatever the interleaving, a delete answers 204 or
 * 404, and every event is stored.
 */
for (const backend of testBackends()) {
  describe(`deleting audit sinks while events are written, on ${backend}`, () => {
    let t: TestApp;
    let admin: User;

    before(async () => {
      t = await createTestApp(backend, {
        AUDIT_SINK_ALLOW_HTTP: 'true',
        AUDIT_SINK_ALLOW_PRIVATE_NETWORKS: 'true',
        AUDIT_FLUSH_INTERVAL_MS: '5',
        AUDIT_BATCH_SIZE: '20',
      });
      admin = await signUp(t.app);
    });
    after(async () => t.close());

    const createSink = async (index: number): Promise<string> => {
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/audit-sinks',
        headers: admin.headers,
        // Never delivered to: this test runs no deliverer.
        payload: { name: `race-${index}`, format: 'webhook', url: 'http://127.0.0.1:9/hook' },
      });
      assert.equal(response.statusCode, 201, response.body);
      return response.json<{ id: string }>().id;
    };

    it('answers 204 once and 404 otherwise for every delete, and loses no event', async () => {
      const slug = `race-${Date.now().toString(36)}`;
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: admin.headers,
        payload: { name: 'Race', slug },
      });
      assert.equal(created.statusCode, 201, created.body);
      const sinkIds: string[] = [];
      for (let index = 0; index < SINKS; index++) sinkIds.push(await createSink(index));

      // Events in the change's transaction (project updates) and through the batched writer.
      let isRunning = true;
      const changeStatuses: number[] = [];
      let queued = 0;
      const changer = async () => {
        for (let n = 0; isRunning; n++) {
          const response = await t.app.inject({
            method: 'PATCH',
            url: `/v1/projects/${slug}`,
            headers: admin.headers,
            payload: { name: `Race ${n}` },
          });
          changeStatuses.push(response.statusCode);
        }
      };
      const queuer = async () => {
        while (isRunning) {
          for (let n = 0; n < 10; n++) {
            t.deps.audit.recorder.record({ action: 'test.race', details: { n } });
            queued++;
          }
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      };
      const load = Promise.all([changer(), changer(), changer(), queuer()]);

      const deletes: Array<{ id: string; status: number; code: string | undefined }> = [];
      const remove = async (id: string) => {
        const response = await t.app.inject({
          method: 'DELETE',
          url: `/v1/audit-sinks/${id}`,
          headers: admin.headers,
        });
        const body = response.body === '' ? {} : response.json<{ error?: { code: string } }>();
        deletes.push({ id, status: response.statusCode, code: body.error?.code });
      };
      const pending = [...sinkIds];
      const deleter = async () => {
        for (let id = pending.shift(); id !== undefined; id = pending.shift())
          await Promise.all([remove(id), remove(id)]);
      };
      await Promise.all(Array.from({ length: DELETERS }, deleter));
      isRunning = false;
      await load;
      await t.deps.audit.writer.flush();

      const unexpected = deletes.filter(
        (entry) =>
          entry.status !== 204 && !(entry.status === 404 && entry.code === 'AUDIT_SINK_NOT_FOUND'),
      );
      assert.deepEqual(unexpected, []);
      for (const id of sinkIds)
        assert.equal(
          deletes.filter((entry) => entry.id === id && entry.status === 204).length,
          1,
          `sink ${id} deleted once`,
        );
      assert.ok(changeStatuses.length > 0);
      assert.deepEqual(
        changeStatuses.filter((status) => status !== 200),
        [],
      );

      const db = t.deps.database.db;
      assert.equal(t.deps.audit.writer.spoolDepth(), 0);
      assert.equal(
        await metricValue(t.deps.metrics.registry, 'switchyard_audit_flush_failures_total'),
        0,
      );
      const { rows } = await sql<{ count: number }>`
        select count(*)::int as count from audit_events where action = 'test.race'`.execute(db);
      assert.equal(Number(rows[0]?.count), queued);
      const sinkDeletions = await sql<{ count: number }>`
        select count(*)::int as count from audit_events
        where action = 'audit_sink.delete' and outcome = 'success'`.execute(db);
      assert.equal(Number(sinkDeletions.rows[0]?.count), SINKS);
      const outbox = await sql<{ count: number }>`
        select count(*)::int as count from audit_outbox`.execute(db);
      assert.equal(Number(outbox.rows[0]?.count), 0);
      const report = await verifyChain(db, t.deps.keys);
      assert.equal(report.ok, true, JSON.stringify(report.firstBreak));
    });
  });
}
