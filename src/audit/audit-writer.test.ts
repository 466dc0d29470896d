import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { waitUntil } from '../../test/support/wait.js';
import { AuditSpool } from './audit-spool.js';
import { insertEvents } from './audit.repository.js';
import {
  metricValue,
  numberedEvent,
  range,
  storedNumbers,
  switchableInsert,
  writerRig,
  type WriterRig,
} from './test-support/events.js';

const SLOW = { timeoutMs: 10_000 };

for (const backend of testBackends()) {
  describe(`the batched audit writer on ${backend}`, () => {
    let testDb: TestDatabase;
    let rig: WriterRig;
    let base = 0;
    // Each test numbers its events from its own base, so they share one database.
    const next = (count: number) => {
      const numbers = range(count, base);
      base += count;
      return numbers;
    };
    const storedSince = async (first: number) =>
      (await storedNumbers(testDb.database.db)).filter((n) => n >= first);

    before(async () => {
      testDb = await createTestDatabase(backend);
    });
    after(async () => testDb.drop());
    afterEach(() => rig.cleanup());

    it('writes a full batch at once in one multi-row insert, and a partial one when its time is up', async () => {
      rig = writerRig();
      const { insert, state } = switchableInsert(testDb.database.db);
      const writer = rig.open(insert, { batchSize: 10, flushIntervalMs: 60_000 });
      const numbers = next(10);
      for (const n of numbers.slice(0, 9)) writer.enqueue(numberedEvent(n));
      await nextTurn();
      assert.equal(state.calls, 0, 'nine of ten wait for the size or the timer');
      writer.enqueue(numberedEvent(numbers[9] ?? 0));
      await waitUntil(
        'the full batch',
        async () => (await storedSince(numbers[0] ?? 0)).length === 10,
        SLOW,
      );
      assert.equal(state.calls, 1, 'one statement for ten events');
      assert.equal(await metricValue(rig.registry, 'switchyard_audit_batch_size_sum'), 10);
      await writer.close();

      const timed = writerRig();
      const quick = timed.open(insert, { batchSize: 1000, flushIntervalMs: 30 });
      const few = next(3);
      for (const n of few) quick.enqueue(numberedEvent(n));
      await waitUntil(
        'the timed flush',
        async () => (await storedSince(few[0] ?? 0)).length === 3,
        SLOW,
      );
      await quick.close();
      timed.cleanup();
    });

    it('spools events, synced to disk, while the database refuses them and replays them in order exactly once', async () => {
      rig = writerRig();
      const { insert, state } = switchableInsert(testDb.database.db);
      const writer = rig.open(insert, {
        batchSize: 10,
        flushIntervalMs: 5,
        retryMinMs: 20,
        retryMaxMs: 50,
      });
      state.down = true;
      const numbers = next(35);
      for (const n of numbers) writer.enqueue(numberedEvent(n));
      await waitUntil(
        'everything spooled',
        async () => writer.spoolDepth() === 35 && writer.queueDepth() === 0,
        SLOW,
      );
      const lines = readFileSync(rig.spoolPath, 'utf8').trim().split('\n');
      assert.deepEqual(
        lines.map((line) => (JSON.parse(line) as { details: { n: number } }).details.n),
        numbers,
      );
      assert.ok((await metricValue(rig.registry, 'switchyard_audit_flush_failures_total')) >= 1);
      assert.equal(await metricValue(rig.registry, 'switchyard_audit_spool_depth'), 35);

      state.down = false;
      await waitUntil('the spool replayed', async () => writer.spoolDepth() === 0, SLOW);
      assert.deepEqual(await storedSince(numbers[0] ?? 0), numbers);
      assert.equal(await metricValue(rig.registry, 'switchyard_audit_events_replayed_total'), 35);
      assert.equal(readFileSync(rig.spoolPath, 'utf8'), '', 'a drained spool is emptied');
      await writer.close();
    });

    it('sends events past a full queue to the spool, never to the floor, keeping their order', async () => {
      rig = writerRig();
      const { insert, state } = switchableInsert(testDb.database.db);
      const writer = rig.open(insert, { batchSize: 1000, maxQueue: 5, flushIntervalMs: 60_000 });
      const numbers = next(12);
      for (const n of numbers) writer.enqueue(numberedEvent(n));
      assert.equal(
        writer.spoolDepth(),
        12,
        'two overflows spooled the queue and the event each time',
      );
      assert.equal(state.calls, 0);
      await writer.flush();
      assert.deepEqual(await storedSince(numbers[0] ?? 0), numbers);
      await writer.close();
    });

    it('spools a batch the database is too slow to take, and stores it once when the slow insert lands too', async () => {
      rig = writerRig();
      const { insert, state } = switchableInsert(testDb.database.db);
      const writer = rig.open(insert, {
        batchSize: 100,
        flushIntervalMs: 60_000,
        insertTimeoutMs: 50,
        retryMinMs: 1,
      });
      state.delayMs = 400;
      const numbers = next(5);
      for (const n of numbers) writer.enqueue(numberedEvent(n));
      await writer.flush();
      assert.equal(writer.spoolDepth(), 5, 'the timed-out batch waits in the spool');
      await waitUntil(
        'the slow insert landing',
        async () => (await storedSince(numbers[0] ?? 0)).length === 5,
        SLOW,
      );

      state.delayMs = 0;
      await writer.flush();
      assert.equal(writer.spoolDepth(), 0);
      assert.deepEqual(
        await storedSince(numbers[0] ?? 0),
        numbers,
        'the replay skipped the ids already stored',
      );
      assert.equal(await metricValue(rig.registry, 'switchyard_audit_events_replayed_total'), 0);
      await writer.close();
    });

    it('takes up a spool left by a crash where the saved offset says, cutting a torn last line', async () => {
      rig = writerRig();
      const numbers = next(12);
      const first = AuditSpool.open(rig.spoolPath);
      first.append(numbers.map((n) => numberedEvent(n)));
      const chunk = first.peek(5);
      await insertEvents(testDb.database.db, chunk.records);
      first.advance(chunk.end, chunk.records.length);
      appendFileSync(rig.spoolPath, '{"id":"torn-by-a-crash","occ');
      first.close();

      const reopened = AuditSpool.open(rig.spoolPath);
      assert.equal(reopened.depth, 7, 'the five replayed are not counted, the torn line is gone');
      reopened.close();
      const { insert } = switchableInsert(testDb.database.db);
      const writer = rig.open(insert, { batchSize: 4 });
      await waitUntil('the replay', async () => writer.spoolDepth() === 0, SLOW);
      assert.deepEqual(await storedSince(numbers[0] ?? 0), numbers);
      await writer.close();
    });
  });
}
