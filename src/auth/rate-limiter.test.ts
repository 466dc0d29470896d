import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { capturingLogger, testRedisUrl } from '../../test/support/identity.js';
import { createMemoryRateLimiter, createRedisRateLimiter } from './rate-limiter.js';
import { createRedisFallback } from './redis-fallback.js';

describe('rate limiter in process memory', () => {
  it('allows `limit` hits per window, then answers how long to wait, then a new window', async () => {
    let now = 1_000_000;
    const limiter = createMemoryRateLimiter(() => now);
    for (let hit = 0; hit < 3; hit++) assert.equal((await limiter.hit('k', 3, 60)).isAllowed, true);
    now += 20_000;
    assert.deepEqual(await limiter.hit('k', 3, 60), { isAllowed: false, retryAfterSeconds: 40 });
    assert.equal((await limiter.hit('other', 3, 60)).isAllowed, true, 'keys are independent');
    now += 40_000;
    assert.equal((await limiter.hit('k', 3, 60)).isAllowed, true);
  });
});

describe('rate limiter shared through Redis', () => {
  let redis: Redis;
  let second: Redis;
  const prefix = `switchyard-test-${randomBytes(4).toString('hex')}:`;

  before(async () => {
    redis = new Redis(testRedisUrl(), { lazyConnect: true });
    second = new Redis(testRedisUrl(), { lazyConnect: true });
    await Promise.all([redis.connect(), second.connect()]);
  });
  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    second.disconnect();
  });

  it('counts hits of every replica against one limit', async () => {
    const { logger } = capturingLogger();
    const fallback = createRedisFallback(logger, new Registry());
    const replicaA = createRedisRateLimiter({ client: redis, prefix, fallback });
    const replicaB = createRedisRateLimiter({ client: second, prefix, fallback });
    assert.equal((await replicaA.hit('login', 2, 60)).isAllowed, true);
    assert.equal((await replicaB.hit('login', 2, 60)).isAllowed, true);
    const refused = await replicaA.hit('login', 2, 60);
    assert.equal(refused.isAllowed, false);
    assert.ok(refused.retryAfterSeconds > 0 && refused.retryAfterSeconds <= 60);
    assert.ok((await redis.pttl(`${prefix}ratelimit:login`)) > 0, 'the window expires in Redis');
  });

  it('falls back to process memory when Redis fails, with one warning and a counted fallback', async () => {
    const { logger, lines } = capturingLogger();
    const registry = new Registry();
    const fallback = createRedisFallback(logger, registry);
    // Nothing listens on port 1: every command fails at once.
    const dead = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    dead.on('error', () => undefined);
    const limiter = createRedisRateLimiter({ client: dead, prefix, fallback });
    assert.equal((await limiter.hit('k', 1, 60)).isAllowed, true);
    assert.equal(
      (await limiter.hit('k', 1, 60)).isAllowed,
      false,
      'the memory fallback still limits',
    );
    const warnings = lines.filter((line) => line['msg'] === 'redis unavailable; falling back');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.['level'], 40);
    const metric = await registry.getSingleMetricAsString('switchyard_auth_redis_fallbacks_total');
    assert.match(metric, /component="rate_limit"} 2/);
    dead.disconnect();
  });
});
