import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { KeyRing } from '../auth/keys.js';
import type { Config } from '../platform/config.js';
import type { Database } from '../platform/db/database.js';
import type { Resolver } from '../platform/url-guard.js';
import type { MasterKeyRing } from '../secrets/secret-crypto.js';
import { createCheckpointer, type Checkpointer } from './audit-checkpoints.js';
import { createAuditRecorder, type AuditRecorder } from './audit-recorder.js';
import { openOwnSpool } from './audit-spool.js';
import { createAuditWriter, type AuditWriter } from './audit-writer.js';
import { createAuditMetrics, type AuditMetrics } from './audit.metrics.js';
import {
  findJobRequester,
  findRouteScope,
  insertEvents,
  type JobSubject,
} from './audit.repository.js';
import type { FindRouteScope } from './audit-http.js';
import { SYSTEM_ACTOR, type Actor } from './audit-event.js';
import { createAuditService, type AuditService } from './audit.service.js';
import { createSinkDeliverer, type SinkDeliverer } from './sink-delivery.js';
import { createSinkService, type SinkService } from './sink.service.js';

/** The audit trail of one process: recorder and writer, reading, checkpoints and sinks. */
export interface Audit {
  recorder: AuditRecorder;
  writer: AuditWriter;
  metrics: AuditMetrics;
  checkpointer: Checkpointer;
  service: AuditService;
  sinks: SinkService;
  deliverer: SinkDeliverer;
  /**
   * Who a job acts for: the user who asked for its build, deployment or rotation, so the
   * events it records name them rather than the system. The system when no one is known.
   */
  jobActor(subject: JobSubject): Promise<Actor>;
  /** The project (and environment) a request's URL names, to place its request event. */
  findRouteScope: FindRouteScope;
  /** The background work of a worker process: checkpoints and sink deliveries, until `signal`. */
  runBackground(signal: AbortSignal): Promise<void>;
  /** Flushes the writer (to the database, or the spool) and closes the spool. */
  close(): Promise<void>;
}

/**
 * Opens the audit trail: takes a spool of its own (and the spools of processes that are
 * gone, whose events it replays), starts the batched writer, and wires reading, checkpoints
 * and sinks.
 */
export function openAudit(deps: {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  registry: Registry;
  keys: KeyRing;
  masterKeys: MasterKeyRing;
  resolver: Resolver;
}): Audit {
  const { config, database } = deps;
  const settings = config.audit;
  const logger = deps.logger.child({ component: 'audit' });
  const db = database.db;
  const metrics = createAuditMetrics(deps.registry);
  const { spool, adopted, unreadable } = openOwnSpool(settings.spoolDir, config.process.role);
  if (adopted > 0 || unreadable > 0)
    logger.warn(
      { adopted, unreadable, spool: spool.path },
      'audit spools of stopped processes moved into this one',
    );
  if (spool.depth > 0)
    logger.warn(
      { spooled: spool.depth, spool: spool.path },
      'audit spool holds events from an earlier run; replaying',
    );
  const writer = createAuditWriter({
    insert: (records) => insertEvents(db, records),
    spool,
    logger,
    metrics,
    options: {
      batchSize: settings.batchSize,
      flushIntervalMs: settings.flushIntervalMs,
      maxQueue: settings.queueMax,
      insertTimeoutMs: settings.insertTimeoutMs,
    },
  });
  metrics.observe({ queueDepth: writer.queueDepth, spoolDepth: writer.spoolDepth });

  const recorder = createAuditRecorder({ writer, metrics });
  const checkpointer = createCheckpointer({
    db,
    keys: deps.keys,
    logger,
    metrics,
    intervalMs: settings.checkpointIntervalMs,
  });
  const outbound = {
    allowPrivateNetworks: settings.sinks.allowPrivateNetworks,
    allowHttp: settings.sinks.allowHttp,
  };
  const sinks = createSinkService({
    db,
    keys: deps.masterKeys,
    recorder,
    resolver: deps.resolver,
    outbound,
  });
  const deliverer = createSinkDeliverer({
    db,
    logger,
    metrics,
    settings: {
      ...outbound,
      timeoutMs: settings.sinks.timeoutMs,
      resolver: deps.resolver,
      backoffBaseMs: settings.sinks.backoffBaseMs,
      backoffMaxMs: settings.sinks.backoffMaxMs,
    },
    credentialsOf: sinks.credentialsOf,
  });

  return {
    recorder,
    writer,
    metrics,
    checkpointer,
    service: createAuditService({ db, keys: deps.keys, checkpointer, recorder }),
    sinks,
    deliverer,
    async jobActor(subject) {
      const userId = await findJobRequester(db, subject).catch(() => null);
      return userId === null
        ? SYSTEM_ACTOR
        : { type: 'user', id: userId, tokenId: null, role: null };
    },
    findRouteScope: (target) => findRouteScope(db, target),
    async runBackground(signal) {
      await Promise.all([
        checkpointer.run(signal),
        deliverer.run(signal, settings.sinks.pollIntervalMs),
      ]);
    },
    async close() {
      await writer.close();
      if (writer.spoolDepth() > 0)
        logger.warn(
          { spooled: writer.spoolDepth() },
          'audit events left in the spool; the next start replays them',
        );
    },
  };
}
