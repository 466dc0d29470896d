import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric Switchyard exports, on a registry of its own (one per app instance). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    httpDuration: new Histogram({
      name: 'switchyard_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    dbPool: new Gauge({
      name: 'switchyard_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers,
    }),
    queueDepth: new Gauge({
      name: 'switchyard_queue_depth',
      help: 'Jobs waiting per queue',
      labelNames: ['queue'] as const,
      registers,
    }),
    jobDuration: new Histogram({
      name: 'switchyard_job_duration_seconds',
      help: 'Job run time by job and outcome',
      labelNames: ['job', 'outcome'] as const,
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'switchyard_reconcile_duration_seconds',
      help: 'Deployment reconcile time by outcome',
      labelNames: ['outcome'] as const,
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    }),
    workloadRestarts: new Counter({
      name: 'switchyard_workload_restarts_total',
      help: 'Instances restarted after a crash',
      registers,
    }),
    buildsTotal: new Counter({
      name: 'switchyard_builds_total',
      help: 'Finished builds by outcome',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
