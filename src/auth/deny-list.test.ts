import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import {
  createTestDatabase,
  testBackends,
  type TestDatabase,
} from '../../test/support/database.js';
import { capturingLogger, testRedisUrl } from '../../test/support/identity.js';
import { waitUntil } from '../../test/support/wait.js';
import { createDenyList, type DenyList } from './deny-list.js';
import { createRedisFallback } from './redis-fallback.js';

const HORIZON_SECONDS = 930;

// Replicas only exist on PostgreSQL: PGlite is one process.
const postgres = testBackends().includes('postgres');

describe(
  'deny list shared by replicas',
  { skip: !postgres && 'PostgreSQL not among SWITCHYARD_TEST_BACKENDS' },
  () => {
    let testDb: TestDatabase;
    const lists: DenyList[] = [];
    const clients: Redis[] = [];
    const { logger, lines } = capturingLogger();

    async function replica(
      options: { redisUrl?: string; channel?: string; pollMs?: number } = {},
    ): Promise<DenyList> {
      const fallback = createRedisFallback(logger, new Registry());
      let redis;
      if (options.redisUrl !== undefined) {
        const client = new Redis(options.redisUrl, {
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          retryStrategy: () => null,
        });
        client.on('error', () => undefined);
        clients.push(client);
        redis = {
          client,
          channel: options.channel ?? `switchyard-test-${randomBytes(4).toString('hex')}:denials`,
          fallback,
        };
      }
      const list = createDenyList({
        db: testDb.database.db,
        logger,
        horizonSeconds: HORIZON_SECONDS,
        pollMs: options.pollMs,
        redis,
      });
      await list.start();
      lists.push(list);
      return list;
    }

    before(async () => {
      testDb = await createTestDatabase('postgres');
    });
    after(async () => {
      for (const list of lists) await list.close();
      for (const client of clients) client.disconnect();
      await testDb.drop();
    });

    it('refuses at once on the replica that denied, and on another after it reads the database', async () => {
      const a = await replica();
      const b = await replica();
      const [tokenId, sessionId] = [randomUUID(), randomUUID()];
      await a.denyToken(tokenId, new Date(Date.now() + 60_000));
      await a.denySessions([sessionId]);
      assert.equal(a.isDenied(tokenId, randomUUID()), true);
      assert.equal(a.isDenied(randomUUID(), sessionId), true);
      assert.equal(b.isDenied(tokenId, randomUUID()), false, 'b has not read yet');
      await b.sync();
      assert.equal(b.isDenied(tokenId, randomUUID()), true);
      assert.equal(b.isDenied(randomUUID(), sessionId), true);
      assert.equal(b.isDenied(randomUUID(), randomUUID()), false);
    });

    it('loads denials made before it started', async () => {
      const a = await replica();
      const tokenId = randomUUID();
      await a.denyToken(tokenId, new Date(Date.now() + 60_000));
      const late = await replica();
      assert.equal(late.isDenied(tokenId, randomUUID()), true);
    });

    it('forgets a denial once nothing it denies can still be valid', async () => {
      const a = await replica();
      const tokenId = randomUUID();
      await a.denyToken(tokenId, new Date(Date.now() + 200));
      assert.equal(a.isDenied(tokenId, randomUUID()), true);
      await waitUntil('the denial to lapse', async () => !a.isDenied(tokenId, randomUUID()), {
        timeoutMs: 5_000,
      });
    });

    it('follows another replica by polling, without being asked', async () => {
      const a = await replica();
      const b = await replica({ pollMs: 100 });
      const tokenId = randomUUID();
      await a.denyToken(tokenId, new Date(Date.now() + 60_000));
      await waitUntil('b to poll the denial', async () => b.isDenied(tokenId, randomUUID()), {
        timeoutMs: 5_000,
      });
    });

    it('reaches another replica through Redis pub/sub, not the database poll', async () => {
      const channel = `switchyard-test-${randomBytes(4).toString('hex')}:denials`;
      // The receiver polls the database only once an hour: the denial can only come by Redis.
      const sender = await replica({ redisUrl: testRedisUrl(), channel });
      const receiver = await replica({ redisUrl: testRedisUrl(), channel, pollMs: 3_600_000 });
      const elsewhere = await replica({ redisUrl: testRedisUrl() });
      const sessionId = randomUUID();
      await sender.denySessions([sessionId]);
      await waitUntil(
        'the denial to arrive through Redis',
        async () => receiver.isDenied(randomUUID(), sessionId),
        {
          timeoutMs: 2_000,
          intervalMs: 1,
        },
      );
      assert.equal(
        elsewhere.isDenied(randomUUID(), sessionId),
        false,
        'another channel (installation) is not told',
      );
    });

    it('keeps denying through the database when Redis is down, with a warning', async () => {
      const a = await replica({ redisUrl: 'redis://127.0.0.1:1' });
      const b = await replica();
      const tokenId = randomUUID();
      await a.denyToken(tokenId, new Date(Date.now() + 60_000));
      await b.sync();
      assert.equal(b.isDenied(tokenId, randomUUID()), true);
      assert.ok(
        lines.some(
          (line) =>
            line['msg'] === 'redis unavailable; falling back' && line['component'] === 'deny_list',
        ),
      );
    });
  },
);
