import type { Redis } from 'ioredis';
import type { RedisFallback } from './redis-fallback.js';

export interface RateDecision {
  isAllowed: boolean;
  /** Seconds until the window that refused this attempt ends (0 when allowed). */
  retryAfterSeconds: number;
}

/**
 * Fixed-window counters: each `hit` counts one attempt against `key` and says whether it
 * is within `limit` per `windowSeconds`. Shared through Redis when configured; in process
 * memory otherwise, and whenever Redis fails.
 */
export interface RateLimiter {
  hit(key: string, limit: number, windowSeconds: number): Promise<RateDecision>;
}

const MEMORY_PRUNE_THRESHOLD = 10_000;

export function createMemoryRateLimiter(now: () => number = Date.now): RateLimiter {
  const windows = new Map<string, { count: number; resetAtMs: number }>();

  function prune(at: number): void {
    if (windows.size < MEMORY_PRUNE_THRESHOLD) return;
    for (const [key, window] of windows) if (window.resetAtMs <= at) windows.delete(key);
  }

  return {
    async hit(key, limit, windowSeconds) {
      const at = now();
      prune(at);
      let window = windows.get(key);
      if (window === undefined || window.resetAtMs <= at) {
        window = { count: 0, resetAtMs: at + windowSeconds * 1000 };
        windows.set(key, window);
      }
      window.count += 1;
      return decide(window.count, limit, window.resetAtMs - at);
    },
  };
}

// INCR, and start the window's expiry on its first hit; answers the count and the time left.
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
`;

export function createRedisRateLimiter(options: {
  client: Redis;
  prefix: string;
  fallback: RedisFallback;
  memory?: RateLimiter;
}): RateLimiter {
  const memory = options.memory ?? createMemoryRateLimiter();
  return {
    async hit(key, limit, windowSeconds) {
      try {
        const reply = (await options.client.eval(
          HIT_SCRIPT,
          1,
          `${options.prefix}ratelimit:${key}`,
          String(windowSeconds * 1000),
        )) as [number, number];
        options.fallback.succeeded('rate_limit');
        return decide(Number(reply[0]), limit, Number(reply[1]));
      } catch (error) {
        options.fallback.failed('rate_limit', 'hit', error);
        return memory.hit(key, limit, windowSeconds);
      }
    },
  };
}

function decide(count: number, limit: number, remainingMs: number): RateDecision {
  if (count <= limit) return { isAllowed: true, retryAfterSeconds: 0 };
  return { isAllowed: false, retryAfterSeconds: Math.max(1, Math.ceil(remainingMs / 1000)) };
}
