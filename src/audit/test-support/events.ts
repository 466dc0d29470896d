import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Db } from '../../platform/db/transaction.js';
import { buildRecord, SYSTEM_ACTOR, type AuditRecord } from '../audit-event.js';
import { createAuditMetrics, type AuditMetrics } from '../audit.metrics.js';
import { AuditSpool } from '../audit-spool.js';
import { createAuditWriter, type AuditWriterOptions, type InsertEvents } from '../audit-writer.js';
import { insertEvents } from '../audit.repository.js';

export const silent = pino({ level: 'silent' });

/** An event numbered `n` (in details), so tests can check the order events were stored in. */
export function numberedEvent(
  n: number,
  overrides: Partial<Parameters<typeof buildRecord>[0]> = {},
): AuditRecord {
  return buildRecord(
    { action: 'test.event', details: { n }, ...overrides },
    {
      actor: SYSTEM_ACTOR,
      facts: { requestId: `req-${n}`, clientIp: '127.0.0.1', userAgent: 'test' },
    },
  );
}

/** The `n` of every stored test event, in chain order. */
export async function storedNumbers(db: Db): Promise<number[]> {
  const { rows } = await sql<{
    n: number;
  }>`select (details->>'n')::int as n from audit_events where action = 'test.event' order by seq`.execute(
    db,
  );
  return rows.map((row) => row.n);
}

export function range(count: number, from = 0): number[] {
  return Array.from({ length: count }, (_, index) => from + index);
}

/**
 * The real insert, behind switches a test flips: `down` fails every call the way a refused
 * connection does, `delayMs` holds each call back before it reaches the database.
 */
export function switchableInsert(db: Db) {
  const state = { down: false, delayMs: 0, calls: 0 };
  const insert: InsertEvents = async (records) => {
    state.calls += 1;
    if (state.down)
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
        code: 'ECONNREFUSED',
      });
    if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
    return insertEvents(db, records);
  };
  return { state, insert };
}

export interface WriterRig {
  dir: string;
  spoolPath: string;
  metrics: AuditMetrics;
  registry: Registry;
  open(
    insert: InsertEvents,
    options?: Partial<AuditWriterOptions>,
  ): ReturnType<typeof createAuditWriter>;
  cleanup(): void;
}

/** A spool folder of its own and fresh metrics, for writers under test. */
export function writerRig(): WriterRig {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-audit-'));
  const registry = new Registry();
  const metrics = createAuditMetrics(registry);
  const spoolPath = join(dir, 'spool.ndjson');
  return {
    dir,
    spoolPath,
    metrics,
    registry,
    open(insert, options = {}) {
      const writer = createAuditWriter({
        insert,
        spool: AuditSpool.open(spoolPath),
        logger: silent,
        metrics,
        options,
      });
      metrics.observe({ queueDepth: writer.queueDepth, spoolDepth: writer.spoolDepth });
      return writer;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The current value of a series (summed over its labels) in a registry; a histogram's count
 * and sum are named `<histogram>_count` and `<histogram>_sum`.
 */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const base = name.replace(/_(count|sum)$/, '');
  const metric = registry.getSingleMetric(name) ?? registry.getSingleMetric(base);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((value) => ((value as { metricName?: string }).metricName ?? name) === name)
    .filter((value) =>
      Object.entries(labels).every(([key, expected]) => String(value.labels[key]) === expected),
    )
    .reduce((sum, value) => sum + value.value, 0);
}
