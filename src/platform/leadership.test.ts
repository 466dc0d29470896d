import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { startElection, type Election } from './leadership.js';
import { acquireLease, findLeaseHolder } from './leases.repository.js';

const logger = pino({ level: 'silent' });

async function until(check: () => boolean, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

for (const backend of testBackends()) {
  describe(`leader election on ${backend}`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase(backend);
    });
    after(async () => t.drop());

    it('grants a lease to one holder until it expires', async () => {
      const db = t.database.db;
      assert.equal(await acquireLease(db, 'unit', 'a', 60_000), true);
      assert.equal(await acquireLease(db, 'unit', 'b', 60_000), false);
      assert.equal(await acquireLease(db, 'unit', 'a', 60_000), true, 'the holder renews');

      assert.equal(await acquireLease(db, 'short', 'a', 200), true);
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(await acquireLease(db, 'short', 'b', 60_000), true, 'an expired lease moves');
      assert.equal(await findLeaseHolder(db, 'short'), 'b');
    });

    it('elects one of two contenders and hands over when the leader stops', async (context) => {
      const events: string[] = [];
      const started: Election[] = [];
      // Stopped even when an assertion fails, so no loop outlives the test.
      context.after(() => Promise.all(started.map((election) => election.stop())));
      const contender = (holder: string): Election => {
        const election = startElection({
          db: t.database.db,
          name: 'handover',
          holder,
          ttlMs: 3_000,
          logger,
          onElected: async () => void events.push(`${holder} elected`),
          onDeposed: async () => void events.push(`${holder} deposed`),
        });
        started.push(election);
        return election;
      };
      const first = contender('first');
      await until(() => first.isLeader(), 5_000);
      const second = contender('second');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(second.isLeader(), false, 'only one leader at a time');

      await first.stop();
      await until(() => second.isLeader(), 10_000);
      await second.stop();
      assert.deepEqual(events, [
        'first elected',
        'first deposed',
        'second elected',
        'second deposed',
      ]);
    });
  });
}
