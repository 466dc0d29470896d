import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { loadKeyRing } from '../auth/keys.js';
import { AppError } from '../platform/errors.js';
import { inTransaction } from '../platform/db/transaction.js';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { installAuditHooks } from './audit-http.js';
import { createAuditRecorder } from './audit-recorder.js';
import type { AuditWriter } from './audit-writer.js';
import { findRouteScope, insertEvents } from './audit.repository.js';
import { writerRig, type WriterRig } from './test-support/events.js';

for (const backend of testBackends()) {
  describe(`the request audit hooks on ${backend}`, () => {
    let testDb: TestDatabase;
    let app: FastifyInstance;
    let rig: WriterRig;
    let writer: AuditWriter;
    let keyDir: string;

    const eventsOf = async (requestId: string) => {
      await writer.flush();
      const { rows } = await sql<{ id: string; action: string; outcome: string }>`
        select id, action, outcome from audit_events where request_id = ${requestId} order by seq`.execute(
        testDb.database.db,
      );
      return rows;
    };

    before(async () => {
      testDb = await createTestDatabase(backend);
      const db = testDb.database.db;
      rig = writerRig();
      writer = rig.open((records) => insertEvents(db, records), { flushIntervalMs: 5 });
      const recorder = createAuditRecorder({ writer, metrics: rig.metrics });
      keyDir = mkdtempSync(join(tmpdir(), 'switchyard-audit-keys-'));
      const keys = await loadKeyRing({ keyFile: undefined, dataDir: keyDir });
      app = Fastify({ requestIdHeader: 'x-request-id' });
      app.decorateRequest('principal', undefined);
      installAuditHooks(app, {
        recorder,
        keys,
        findScope: (target) => findRouteScope(db, target),
        tokens: {
          issuer: 'switchyard',
          audience: 'switchyard-api',
          accessTokenTtlSeconds: 900,
          clockSkewSeconds: 30,
        },
      });

      const change = (then: 'commit' | 'roll back' | 'fail after commit') => async () => {
        await inTransaction(db, async (trx) => {
          await recorder.recordIn(trx, {
            action: 'thing.create',
            resource: { type: 'thing', id: then },
          });
          if (then === 'roll back')
            throw new AppError('VALIDATION_FAILED', 'the change was refused');
        });
        if (then === 'fail after commit')
          throw new Error('the answer failed after the change committed');
        return { ok: true };
      };
      app.post('/commit', change('commit'));
      app.post('/roll-back', change('roll back'));
      app.post('/fail-after-commit', change('fail after commit'));
      app.post('/unaudited', async () => ({ ok: true }));
      app.get('/read', async () => ({ ok: true }));
      app.get('/forbidden', async () => {
        throw new AppError('FORBIDDEN', 'no', { details: { role: 'readonly' } });
      });
      await app.ready();
    });
    after(async () => {
      await app.close();
      await writer.close();
      rig.cleanup();
      rmSync(keyDir, { recursive: true, force: true });
      await testDb.drop();
    });

    const send = (method: 'GET' | 'POST', url: string, requestId: string) =>
      app.inject({ method, url, headers: { 'x-request-id': requestId } });

    it('leaves one event for a change that committed: the one written with it', async () => {
      assert.equal((await send('POST', '/commit', 'commit-1')).statusCode, 200);
      assert.deepEqual(
        (await eventsOf('commit-1')).map((event) => [event.action, event.outcome]),
        [['thing.create', 'success']],
      );
    });

    it('leaves one failure event for a change that rolled back, naming what was attempted', async () => {
      assert.equal((await send('POST', '/roll-back', 'rollback-1')).statusCode, 400);
      assert.deepEqual(
        (await eventsOf('rollback-1')).map((event) => [event.action, event.outcome]),
        [['thing.create', 'failure']],
      );
    });

    it('keeps the committed event alone when the request fails after its change committed', async () => {
      assert.equal((await send('POST', '/fail-after-commit', 'late-1')).statusCode, 500);
      assert.deepEqual(
        (await eventsOf('late-1')).map((event) => [event.action, event.outcome]),
        [['thing.create', 'success']],
      );
    });

    it('records a state-changing request that recorded nothing itself, and a denied read, but not a plain read', async () => {
      assert.equal((await send('POST', '/unaudited', 'plain-1')).statusCode, 200);
      assert.deepEqual(
        (await eventsOf('plain-1')).map((event) => [event.action, event.outcome]),
        [['POST /unaudited', 'success']],
      );
      assert.equal((await send('GET', '/forbidden', 'denied-1')).statusCode, 403);
      assert.deepEqual(
        (await eventsOf('denied-1')).map((event) => [event.action, event.outcome]),
        [['GET /forbidden', 'denied']],
      );
      assert.equal((await send('GET', '/read', 'read-1')).statusCode, 200);
      assert.deepEqual(await eventsOf('read-1'), []);
    });
  });
}
