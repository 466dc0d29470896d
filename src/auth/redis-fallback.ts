import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';

export type RedisComponent = 'connection' | 'rate_limit' | 'deny_list';

/**
 * Tracks Redis outages for the identity code: every failure is counted, the first of an
 * outage is logged at warn, and the first success after it at info. Callers then fall back
 * (to process memory or the database); a client never sees a Redis error.
 */
export interface RedisFallback {
  failed(component: RedisComponent, operation: string, error: unknown): void;
  succeeded(component: RedisComponent): void;
}

export function createRedisFallback(logger: Logger, registry: Registry): RedisFallback {
  const existing = registry.getSingleMetric('switchyard_auth_redis_fallbacks_total');
  const fallbacks =
    existing instanceof Counter
      ? (existing as Counter<'component'>)
      : new Counter({
          name: 'switchyard_auth_redis_fallbacks_total',
          help: 'Identity operations that fell back from Redis to memory or the database',
          labelNames: ['component'] as const,
          registers: [registry],
        });
  const degraded = new Set<RedisComponent>();

  return {
    failed(component, operation, error) {
      fallbacks.labels(component).inc();
      if (degraded.has(component)) return;
      degraded.add(component);
      const message = error instanceof Error ? error.message : String(error);
      logger.warn({ component, operation, error: message }, 'redis unavailable; falling back');
    },
    succeeded(component) {
      if (!degraded.delete(component)) return;
      logger.info({ component }, 'redis available again');
    },
  };
}
