import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { capturingLogger } from '../../test/support/identity.js';
import { identityDb } from './auth.tables.js';
import { accountKey } from './sign-in-guard.js';
import { createIdentityPurge } from './identity-purge.js';
import { createQueue } from '../platform/queue.js';
import { IDENTITY_PURGE, purgeCron } from './identity.jobs.js';

const DAY_MS = 86_400_000;
const ago = (ms: number) => new Date(Date.now() - ms);
const ahead = (ms: number) => new Date(Date.now() + ms);

for (const backend of testBackends()) {
  describe(`identity purge on ${backend}`, () => {
    let testDb: TestDatabase;
    const expired = new Set<string>();
    const live = new Set<string>();

    before(async () => {
      testDb = await createTestDatabase(backend);
    });
    after(async () => testDb.drop());

    /** Plants one row per case; `gone` says whether the purge must delete it. */
    async function plant() {
      const db = identityDb(testDb.database.db);
      const user = await db
        .insertInto('users')
        .values({ email: `purge-${randomUUID()}@example.com`, name: 'P', password_hash: 'x' })
        .returning('id')
        .executeTakeFirstOrThrow();
      const mark = (kind: string, id: string, gone: boolean) =>
        (gone ? expired : live).add(`${kind}:${id}`);

      const sessions: Array<[string, { expires: Date; revoked: Date | null }, boolean]> = [
        ['expired long ago', { expires: ago(8 * DAY_MS), revoked: null }, true],
        ['revoked long ago', { expires: ahead(DAY_MS), revoked: ago(8 * DAY_MS) }, true],
        ['expired within retention', { expires: ago(DAY_MS), revoked: null }, false],
        ['revoked within retention', { expires: ahead(DAY_MS), revoked: ago(DAY_MS) }, false],
        ['live', { expires: ahead(DAY_MS), revoked: null }, false],
      ];
      for (const [, times, gone] of sessions) {
        const id = randomUUID();
        await db
          .insertInto('user_sessions')
          .values({
            id,
            user_id: user.id,
            expires_at: times.expires,
            revoked_at: times.revoked,
            revoked_reason: times.revoked === null ? null : 'logout',
          })
          .execute();
        mark('session', id, gone);
        // Each session has a current refresh token; its family dies with the session.
        const token = await insertRefreshToken(user.id, id, times.expires, null);
        mark('refresh', token, gone);
      }

      // In a live session: an old spent token past expiry goes, the current one stays.
      const liveSession = [...live].find((key) => key.startsWith('session:'))?.slice(8) ?? '';
      mark(
        'refresh',
        await insertRefreshToken(user.id, liveSession, ago(9 * DAY_MS), ago(9 * DAY_MS)),
        true,
      );
      mark(
        'refresh',
        await insertRefreshToken(user.id, liveSession, ago(DAY_MS), ago(2 * DAY_MS)),
        false,
      );

      const signUps: Array<[Date, Date | null, boolean]> = [
        [ago(8 * DAY_MS), null, true],
        [ago(DAY_MS), ago(8 * DAY_MS), true],
        [ago(DAY_MS), null, false],
        [ahead(DAY_MS), ago(DAY_MS), false],
        [ahead(DAY_MS), null, false],
      ];
      for (const [expiresAt, usedAt, gone] of signUps) {
        const row = await db
          .insertInto('pending_sign_ups')
          .values({
            email: `signup-${randomUUID()}@example.com`,
            name: 'S',
            password_hash: 'x',
            token_hash: randomBytes(32).toString('hex'),
            expires_at: expiresAt,
            used_at: usedAt,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        mark('signup', row.id, gone);
      }

      for (const [expiresAt, gone] of [
        [ago(2 * 60_000), true],
        [ahead(60_000), false],
      ] as const) {
        const subject = randomUUID();
        await db
          .insertInto('auth_denials')
          .values({ kind: 'token', subject, expires_at: expiresAt })
          .execute();
        mark('denial', subject, gone);
      }

      const failures: Array<[Date, Date | null, boolean]> = [
        [ago(2 * DAY_MS), null, true],
        [ago(2 * DAY_MS), ago(DAY_MS), true],
        [ago(2 * DAY_MS), ahead(60_000), false],
        [ago(60_000), null, false],
      ];
      for (const [lastFailedAt, lockedUntil, gone] of failures) {
        const key = accountKey(`failure-${randomUUID()}@example.com`);
        await db
          .insertInto('sign_in_failures')
          .values({
            account_key: key,
            failures: 3,
            last_failed_at: lastFailedAt,
            locked_until: lockedUntil,
          })
          .execute();
        mark('failure', key, gone);
      }
    }

    async function insertRefreshToken(
      userId: string,
      familyId: string,
      expiresAt: Date,
      usedAt: Date | null,
    ): Promise<string> {
      const row = await testDb.database.db
        .insertInto('sessions')
        .values({
          user_id: userId,
          family_id: familyId,
          refresh_token_hash: randomBytes(32).toString('hex'),
          expires_at: expiresAt,
          used_at: usedAt,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return row.id;
    }

    async function present(): Promise<Set<string>> {
      const db = identityDb(testDb.database.db);
      const keys = new Set<string>();
      for (const row of await db.selectFrom('user_sessions').select('id').execute())
        keys.add(`session:${row.id}`);
      for (const row of await db.selectFrom('sessions').select('id').execute())
        keys.add(`refresh:${row.id}`);
      for (const row of await db.selectFrom('pending_sign_ups').select('id').execute())
        keys.add(`signup:${row.id}`);
      for (const row of await db.selectFrom('auth_denials').select('subject').execute())
        keys.add(`denial:${row.subject}`);
      for (const row of await db.selectFrom('sign_in_failures').select('account_key').execute())
        keys.add(`failure:${row.account_key}`);
      return keys;
    }

    it('deletes exactly the rows past retention, in bounded batches, and counts them', async () => {
      // Enough rows that batches of 2 take several rounds for every kind.
      for (let round = 0; round < 3; round++) await plant();
      const { logger, lines } = capturingLogger();
      const registry = new Registry();
      const purge = createIdentityPurge({
        db: testDb.database.db,
        logger,
        registry,
        retention: { days: 7, signInFailureHours: 24, batchSize: 2, everyMinutes: 15 },
      });

      const counts = await purge.run();

      const remaining = await present();
      assert.deepEqual(
        [...expired].filter((key) => remaining.has(key)),
        [],
        'expired rows left',
      );
      assert.deepEqual(
        [...live].filter((key) => !remaining.has(key)),
        [],
        'live rows deleted',
      );
      assert.deepEqual(counts, {
        // 3 rounds × (the expired session's token and an old spent one; the revoked session's goes with it)
        refresh_tokens: 6,
        sessions: 6,
        sign_up_tokens: 6,
        denials: 3,
        sign_in_failures: 6,
      });
      const metric = await registry.getSingleMetricAsString(
        'switchyard_identity_rows_purged_total',
      );
      assert.match(metric, /table="sessions"} 6/);
      const line = lines.find((entry) => entry['msg'] === 'identity rows purged');
      assert.deepEqual(line?.['purged'], counts);

      const again = await purge.run();
      assert.ok(
        Object.values(again).every((count) => count === 0),
        JSON.stringify(again),
      );
    });

    it('schedules itself in pg-boss once, however many replicas set it', async () => {
      const logger = pino({ level: 'silent' });
      const queues = [createQueue(testDb.database, logger), createQueue(testDb.database, logger)];
      try {
        for (const queue of queues) {
          await queue.start();
          await queue.schedule(IDENTITY_PURGE, purgeCron(15), {});
        }
        const rows = await sql<{ name: string; cron: string }>`
          SELECT name, cron FROM pgboss.schedule WHERE name = ${IDENTITY_PURGE.name}
        `.execute(testDb.database.db);
        assert.deepEqual(rows.rows, [{ name: 'identity.purge', cron: '*/15 * * * *' }]);
        const policy = await sql<{ policy: string }>`
          SELECT policy FROM pgboss.queue WHERE name = ${IDENTITY_PURGE.name}
        `.execute(testDb.database.db);
        assert.equal(policy.rows[0]?.policy, 'singleton', 'one purge runs at a time');
      } finally {
        for (const queue of queues) await queue.stop(2_000);
      }
      assert.equal(purgeCron(60), '0 * * * *');
    });
  });
}
