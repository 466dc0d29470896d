import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the writer and the sinks report; the gauges read their state when scraped. */
export interface AuditGaugeSources {
  queueDepth(): number;
  spoolDepth(): number;
}

/**
 * The audit trail's metrics, on the app's registry. Counters are only touched from the
 * event loop (JavaScript runs one callback at a time), and gauges are read at scrape time
 * from the writer's own state, so no count can race or drift.
 */
export function createAuditMetrics(registry: Registry) {
  const registers = [registry];
  let sources: AuditGaugeSources = { queueDepth: () => 0, spoolDepth: () => 0 };
  return {
    /** Points the gauges at the writer (done once the writer exists). */
    observe(next: AuditGaugeSources) {
      sources = next;
    },
    queueDepth: new Gauge({
      name: 'switchyard_audit_queue_depth',
      help: 'Audit events waiting in memory for the batched writer',
      registers,
      collect() {
        this.set(sources.queueDepth());
      },
    }),
    spoolDepth: new Gauge({
      name: 'switchyard_audit_spool_depth',
      help: 'Audit events in the local spool file waiting to be replayed into the database',
      registers,
      collect() {
        this.set(sources.spoolDepth());
      },
    }),
    batchSize: new Histogram({
      name: 'switchyard_audit_batch_size',
      help: 'Audit events per multi-row insert of the batched writer',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers,
    }),
    flushDuration: new Histogram({
      name: 'switchyard_audit_flush_duration_seconds',
      help: 'Time to write one batch of audit events, by path (direct, replay) and outcome',
      labelNames: ['path', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    written: new Counter({
      name: 'switchyard_audit_events_written_total',
      help: 'Audit events written, by path: transaction (with their change; counted at the insert, so one rolled back with its change is counted too), direct (batched), replay (from the spool)',
      labelNames: ['path'] as const,
      registers,
    }),
    spooled: new Counter({
      name: 'switchyard_audit_events_spooled_total',
      help: 'Audit events written to the local spool because the database was unavailable, slow, or the queue full',
      registers,
    }),
    replayed: new Counter({
      name: 'switchyard_audit_events_replayed_total',
      help: 'Audit events replayed from the spool into the database (duplicates skipped by id not counted)',
      registers,
    }),
    failed: new Counter({
      name: 'switchyard_audit_flush_failures_total',
      help: 'Batches the database refused or did not answer in time (their events went to the spool)',
      labelNames: ['path'] as const,
      registers,
    }),
    unreadable: new Counter({
      name: 'switchyard_audit_spool_unreadable_total',
      help: 'Spool lines that could not be parsed and were passed over',
      registers,
    }),
    deliveries: new Counter({
      name: 'switchyard_audit_sink_deliveries_total',
      help: 'Delivery attempts to compliance sinks, by sink and outcome (delivered, retry, dead)',
      labelNames: ['sink', 'outcome'] as const,
      registers,
    }),
    deliveryDuration: new Histogram({
      name: 'switchyard_audit_sink_delivery_duration_seconds',
      help: 'Time of one delivery request to a compliance sink',
      labelNames: ['sink'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    checkpoints: new Counter({
      name: 'switchyard_audit_checkpoints_total',
      help: 'Signed checkpoints of the audit chain written',
      registers,
    }),
  };
}

export type AuditMetrics = ReturnType<typeof createAuditMetrics>;
