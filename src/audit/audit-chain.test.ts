import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { loadKeyRing, type KeyRing } from '../auth/keys.js';
import { inTransaction } from '../platform/db/transaction.js';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { createCheckpointer } from './audit-checkpoints.js';
import { signCheckpoint, verifyCheckpoint } from './audit-chain.js';
import { createAuditMetrics } from './audit.metrics.js';
import { getChainHead, insertCheckpoint, insertEvents } from './audit.repository.js';
import { verifyChain } from './audit-verify.js';
import { numberedEvent, range, silent, storedNumbers } from './test-support/events.js';
import { buildRecord, recordFromRow, SYSTEM_ACTOR } from './audit-event.js';
import { auditDb } from './audit.tables.js';

/** Runs `statement` with the audit triggers off, as only a superuser can: a tamperer. */
async function tamper(testDb: TestDatabase, statement: ReturnType<typeof sql>) {
  await testDb.database.withConnection(async (connection) => {
    await connection.query("SET session_replication_role = 'replica'");
    try {
      const compiled = statement.compile(testDb.database.db);
      await connection.query(compiled.sql, [...compiled.parameters]);
    } finally {
      await connection.query("SET session_replication_role = 'origin'");
    }
  });
}

for (const backend of testBackends()) {
  describe(`the audit hash chain on ${backend}`, () => {
    let testDb: TestDatabase;
    let keys: KeyRing;
    let keyDir: string;

    before(async () => {
      testDb = await createTestDatabase(backend);
      keyDir = mkdtempSync(join(tmpdir(), 'switchyard-audit-keys-'));
      keys = await loadKeyRing({ keyFile: undefined, dataDir: keyDir });
    });
    after(async () => {
      await testDb.drop();
      rmSync(keyDir, { recursive: true, force: true });
    });

    it('numbers and links events in the database, and the walk finds no break', async () => {
      const db = testDb.database.db;
      await insertEvents(
        db,
        range(30).map((n) => numberedEvent(n)),
      );
      await inTransaction(db, async (trx) => insertEvents(trx, [numberedEvent(30)]));
      const head = await getChainHead(db);
      assert.equal(head.seq, 31);
      const report = await verifyChain(db, keys);
      assert.equal(report.ok, true, JSON.stringify(report.firstBreak));
      assert.equal(report.checkedEvents, 31);
      assert.deepEqual(report.head, head);
    });

    it('stores text and JSON exactly, so what was hashed is what is read back', async () => {
      const db = testDb.database.db;
      const awkward =
        'quote " backslash \\ braces {a,b} comma, newline\n tab\t unicode é😀 NULL-ish NULL';
      const event = buildRecord(
        {
          action: 'test.awkward',
          resource: { type: 'thing', id: '{1,2}', name: awkward },
          diff: { 'a.b': { from: awkward, to: [1, 2.5, null, true] } },
          details: { nested: { awkward, empty: '' } },
        },
        {
          actor: SYSTEM_ACTOR,
          facts: { requestId: 'req "1"', clientIp: '::1', userAgent: `${awkward}\u0000 end` },
        },
      );
      assert.equal(await insertEvents(db, [event, numberedEvent(-1)]), 2);
      const row = await auditDb(db)
        .selectFrom('audit_events')
        .selectAll()
        .where('id', '=', event.id)
        .executeTakeFirstOrThrow();
      assert.deepEqual(recordFromRow(row), event);
      assert.equal((await verifyChain(db, keys)).ok, true);
    });

    it('stores an event id once: a replay of a stored event is skipped, not chained twice', async () => {
      const db = testDb.database.db;
      const event = numberedEvent(100);
      assert.equal(await insertEvents(db, [event]), 1);
      assert.equal(await insertEvents(db, [event, numberedEvent(101)]), 1);
      assert.deepEqual(
        (await storedNumbers(db)).filter((n) => n >= 100),
        [100, 101],
      );
      assert.equal((await verifyChain(db, keys)).ok, true);
    });

    it('keeps an event rolled back with its change out of the chain, leaving no gap', async () => {
      const db = testDb.database.db;
      await assert.rejects(
        inTransaction(db, async (trx) => {
          await insertEvents(trx, [numberedEvent(200)]);
          throw new Error('the change failed');
        }),
      );
      await insertEvents(db, [numberedEvent(201)]);
      assert.deepEqual(
        (await storedNumbers(db)).filter((n) => n >= 200),
        [201],
      );
      assert.equal((await verifyChain(db, keys)).ok, true);
    });

    it('chains several statements of one transaction, and forgets events a savepoint rolled back', async () => {
      const db = testDb.database.db;
      await inTransaction(db, async (trx) => {
        await insertEvents(
          trx,
          range(3, 250).map((n) => numberedEvent(n)),
        );
        await sql`savepoint before_mistake`.execute(trx);
        await insertEvents(trx, [numberedEvent(253)]);
        await sql`rollback to savepoint before_mistake`.execute(trx);
        await insertEvents(trx, [numberedEvent(254)]);
      });
      assert.deepEqual(
        (await storedNumbers(db)).filter((n) => n >= 250 && n < 260),
        [250, 251, 252, 254],
      );
      const report = await verifyChain(db, keys);
      assert.equal(report.ok, true, JSON.stringify(report.firstBreak));
    });

    it('builds one unbroken chain from transactions committing concurrently', async () => {
      const db = testDb.database.db;
      const before = (await getChainHead(db)).seq;
      await Promise.all(
        range(40, 300).map((n) =>
          inTransaction(db, async (trx) => {
            await sql`select ${n}::int`.execute(trx);
            await insertEvents(trx, [numberedEvent(n)]);
          }),
        ),
      );
      assert.equal((await getChainHead(db)).seq, before + 40);
      const report = await verifyChain(db, keys);
      assert.equal(report.ok, true, JSON.stringify(report.firstBreak));
    });

    it('refuses UPDATE, DELETE and TRUNCATE of events, for the table owner too', async () => {
      const db = testDb.database.db;
      const { rows } = await sql<{ isOwner: boolean }>`
        select tableowner = current_user as "isOwner" from pg_tables where tablename = 'audit_events'`.execute(
        db,
      );
      assert.equal(rows[0]?.isOwner, true, 'the test connects as the owner');
      for (const statement of [
        sql`update audit_events set action = 'rewritten'`,
        sql`delete from audit_events where seq = 1`,
        sql`truncate audit_events`,
        sql`delete from audit_chain_head`,
      ]) {
        await assert.rejects(statement.execute(db), (error: unknown) => {
          assert.equal((error as { code?: string }).code, '42501');
          assert.match((error as Error).message, /append-only/);
          return true;
        });
      }
      assert.equal((await verifyChain(db, keys)).ok, true);
    });

    it('signs checkpoints that verify with the published key, and reports a checkpoint the chain contradicts', async () => {
      const db = testDb.database.db;
      const checkpointer = createCheckpointer({
        db,
        keys,
        logger: silent,
        metrics: createAuditMetrics(new Registry()),
        intervalMs: 60_000,
      });
      const signed = await checkpointer.checkpoint();
      assert.ok(signed !== undefined);
      const head = await getChainHead(db);
      const claim = await verifyCheckpoint(signed.signature, (kid) => keys.verifying.get(kid));
      assert.deepEqual({ seq: claim.seq, hash: claim.hash }, head);
      assert.equal(
        (await checkpointer.checkpoint())?.id,
        signed.id,
        'an unmoved head is not signed twice',
      );
      const report = await verifyChain(db, keys);
      assert.equal(report.ok, true);
      assert.equal(report.checkpoints.checked, 1);

      // A checkpoint signed with the real key over a hash the chain never had.
      const forged = { seq: head.seq, hash: 'f'.repeat(64) };
      await insertCheckpoint(db, {
        ...forged,
        keyId: keys.signing.kid,
        signature: await signCheckpoint(keys.signing, forged, new Date()),
      });
      const broken = await verifyChain(db, keys);
      assert.equal(broken.ok, false);
      assert.equal(broken.firstBreak?.reason, 'checkpoint_mismatch');
      assert.equal(broken.firstBreak?.seq, head.seq);
    });
  });

  describe(`tampering with the audit chain on ${backend}`, () => {
    let testDb: TestDatabase;
    let keys: KeyRing;
    let keyDir: string;

    before(async () => {
      testDb = await createTestDatabase(backend);
      keyDir = mkdtempSync(join(tmpdir(), 'switchyard-audit-keys-'));
      keys = await loadKeyRing({ keyFile: undefined, dataDir: keyDir });
      await insertEvents(
        testDb.database.db,
        range(10).map((n) => numberedEvent(n)),
      );
    });
    after(async () => {
      await testDb.drop();
      rmSync(keyDir, { recursive: true, force: true });
    });

    it('reports the first altered event by its position and id', async () => {
      await tamper(testDb, sql`update audit_events set outcome = 'denied' where seq = 4`);
      const report = await verifyChain(testDb.database.db, keys);
      assert.equal(report.ok, false);
      assert.equal(report.firstBreak?.seq, 4);
      assert.equal(report.firstBreak?.reason, 'content_hash_mismatch');
      assert.equal(report.checkedEvents, 3);
      assert.match(String(report.firstBreak?.eventId), /^[0-9a-f-]{36}$/);
    });

    it('reports a removed event as a gap where it was', async () => {
      await tamper(testDb, sql`delete from audit_events where seq in (2, 3)`);
      const report = await verifyChain(testDb.database.db, keys);
      assert.equal(report.firstBreak?.seq, 2);
      assert.equal(report.firstBreak?.reason, 'sequence_gap');
    });
  });
}
