import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { waitUntil } from '../../test/support/wait.js';
import { AuditSpool, openOwnSpool } from './audit-spool.js';
import { createAuditWriter } from './audit-writer.js';
import { insertEvents } from './audit.repository.js';
import { loadKeyRing } from '../auth/keys.js';
import { verifyChain } from './audit-verify.js';
import {
  numberedEvent,
  range,
  silent,
  storedNumbers,
  writerRig,
  type WriterRig,
} from './test-support/events.js';

const CHILD = fileURLToPath(new URL('./test-support/spool-child.ts', import.meta.url));

/** A loopback port nothing listens on: taken, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

async function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  let seen = '';
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`child said nothing matching ${pattern}: ${seen} ${errors}`)),
      30_000,
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const match = pattern.exec(seen);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before ${pattern}: ${seen} ${errors}`));
    });
  });
}

for (const backend of testBackends()) {
  describe(`audit events spooled by a process that is killed, on ${backend}`, () => {
    let testDb: TestDatabase;
    let rig: WriterRig;
    let child: ChildProcess | undefined;

    before(async () => {
      testDb = await createTestDatabase(backend);
    });
    afterEach(() => {
      if (child?.exitCode === null) child.kill('SIGKILL');
      rig.cleanup();
    });
    after(async () => testDb.drop());

    it('replays them on the next start, in order and once, and the chain verifies', async () => {
      rig = writerRig();
      const deadDatabase = `postgres://postgres@127.0.0.1:${await closedPort()}/unreachable`;
      child = spawn(
        process.execPath,
        ['--import', 'tsx', CHILD, rig.spoolPath, deadDatabase, '30', '1000'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      assert.equal(await waitForLine(child, /spooled \d+/), 'spooled 30');
      assert.throws(
        () => AuditSpool.open(rig.spoolPath),
        /in use by process/,
        'a live owner keeps its spool',
      );

      child.kill('SIGKILL');
      await once(child, 'exit');
      assert.equal(
        readFileSync(`${rig.spoolPath}.lock`, 'utf8').split(' ')[0],
        String(child.pid),
        'the lock names the dead process',
      );

      const db = testDb.database.db;
      const writer = rig.open((records) => insertEvents(db, records), { batchSize: 8 });
      await waitUntil('the replay', async () => writer.spoolDepth() === 0, { timeoutMs: 20_000 });
      assert.deepEqual(await storedNumbers(db), range(30, 1000));
      await writer.close();

      const keyDir = mkdtempSync(join(tmpdir(), 'switchyard-audit-keys-'));
      const report = await verifyChain(
        db,
        await loadKeyRing({ keyFile: undefined, dataDir: keyDir }),
      );
      rmSync(keyDir, { recursive: true, force: true });
      assert.equal(report.ok, true);
      assert.equal(report.checkedEvents, 30);
    });

    it('gives processes sharing a folder a spool each, and replays a dead one exactly once', async () => {
      rig = writerRig();
      const deadDatabase = `postgres://postgres@127.0.0.1:${await closedPort()}/unreachable`;
      const spooling = async (file: string, count: number, first: number) => {
        const started = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            CHILD,
            join(rig.dir, file),
            deadDatabase,
            String(count),
            String(first),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        assert.equal(await waitForLine(started, /spooled \d+/), `spooled ${count}`);
        return started;
      };
      // A live writer holds the first api spool; a worker spooled and then died.
      const live = await spooling('spool-api-0.ndjson', 30, 1000);
      child = live;
      const dead = await spooling('spool-worker-0.ndjson', 20, 2000);
      dead.kill('SIGKILL');
      await once(dead, 'exit');

      const db = testDb.database.db;
      const earlier = (await storedNumbers(db)).length;
      const storedNow = async () => (await storedNumbers(db)).slice(earlier);
      const openWriter = (spool: AuditSpool) =>
        createAuditWriter({
          insert: (records) => insertEvents(db, records),
          spool,
          logger: silent,
          metrics: rig.metrics,
          options: { batchSize: 8, flushIntervalMs: 5 },
        });
      const mine = openOwnSpool(rig.dir, 'api');
      assert.equal(
        mine.spool.path,
        join(rig.dir, 'spool-api-1.ndjson'),
        'the live one keeps its own',
      );
      assert.equal(mine.adopted, 20, "the dead worker's events");
      const another = openOwnSpool(rig.dir, 'api');
      assert.equal(another.spool.path, join(rig.dir, 'spool-api-2.ndjson'));
      assert.equal(another.adopted, 0, 'a spool is taken over once');
      another.spool.remove();

      const writer = openWriter(mine.spool);
      await waitUntil('the replay', async () => writer.spoolDepth() === 0, { timeoutMs: 20_000 });
      assert.deepEqual(await storedNow(), range(20, 2000));

      live.kill('SIGKILL');
      await once(live, 'exit');
      await writer.close();
      const next = openOwnSpool(rig.dir, 'api');
      assert.equal(next.spool.path, join(rig.dir, 'spool-api-0.ndjson'));
      assert.equal(next.spool.depth, 30, "the live one's spool, now its process is gone");
      assert.equal(next.adopted, 0);
      const again = openWriter(next.spool);
      await waitUntil('the replay', async () => again.spoolDepth() === 0, { timeoutMs: 20_000 });
      await again.close();
      assert.deepEqual(await storedNow(), [...range(20, 2000), ...range(30, 1000)]);
    });

    it("takes over a spool whose lock names this process's pid but not this process", () => {
      rig = writerRig();
      const path = join(rig.dir, 'spool-api-0.ndjson');
      const earlier = AuditSpool.open(path);
      earlier.append(range(3, 5000).map((n) => numberedEvent(n)));
      earlier.close();
      // A restarted container: the same hostname, and often the same pid (1).
      writeFileSync(`${path}.lock`, `${process.pid} ${hostname()}\n`);

      const { spool } = openOwnSpool(rig.dir, 'api');
      assert.equal(spool.path, path);
      assert.equal(spool.depth, 3);
      spool.close();
    });
  });
}
