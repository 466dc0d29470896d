import { isAbsolute, join, resolve } from 'node:path';
import type { Reader } from '../platform/config.js';

/**
 * The audit trail's part of the configuration, read by loadConfig with its Reader so every
 * problem is reported together with the rest.
 */
export interface AuditConfig {
  /** The folder of the spool files: one per process, several processes may share it. */
  spoolDir: string;
  batchSize: number;
  flushIntervalMs: number;
  queueMax: number;
  insertTimeoutMs: number;
  /** How often the worker signs a checkpoint of the chain head (when it moved). */
  checkpointIntervalMs: number;
  sinks: {
    /** How often the delivery worker looks for due deliveries. */
    pollIntervalMs: number;
    /** One delivery request may take this long; then it counts as a transient failure. */
    timeoutMs: number;
    /** Backoff between attempts: base doubling up to max, with full jitter. */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** Sink URLs may resolve to loopback or private addresses (tests, on-premises receivers). */
    allowPrivateNetworks: boolean;
    /** Sink URLs may use plain http (never on by default: deliveries carry evidence). */
    allowHttp: boolean;
  };
}

export function readAuditConfig(read: Reader, dataDir: string): AuditConfig {
  const spoolRaw = read.string('AUDIT_SPOOL_DIR');
  return {
    spoolDir:
      spoolRaw === undefined
        ? join(dataDir, 'audit')
        : isAbsolute(spoolRaw)
          ? spoolRaw
          : resolve(spoolRaw),
    batchSize: read.int('AUDIT_BATCH_SIZE', 250, 1, 2_000),
    flushIntervalMs: read.int('AUDIT_FLUSH_INTERVAL_MS', 50, 1, 60_000),
    queueMax: read.int('AUDIT_QUEUE_MAX', 10_000, 10, 1_000_000),
    insertTimeoutMs: read.int('AUDIT_INSERT_TIMEOUT_MS', 5_000, 50, 120_000),
    checkpointIntervalMs: read.int('AUDIT_CHECKPOINT_INTERVAL_MS', 300_000, 1_000, 86_400_000),
    sinks: {
      pollIntervalMs: read.int('AUDIT_SINK_POLL_INTERVAL_MS', 1_000, 10, 600_000),
      timeoutMs: read.int('AUDIT_SINK_TIMEOUT_MS', 10_000, 50, 120_000),
      backoffBaseMs: read.int('AUDIT_SINK_BACKOFF_BASE_MS', 1_000, 1, 600_000),
      backoffMaxMs: read.int('AUDIT_SINK_BACKOFF_MAX_MS', 300_000, 1, 86_400_000),
      allowPrivateNetworks: read.bool('AUDIT_SINK_ALLOW_PRIVATE_NETWORKS', false),
      allowHttp: read.bool('AUDIT_SINK_ALLOW_HTTP', false),
    },
  };
}
