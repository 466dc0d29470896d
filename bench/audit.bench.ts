import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildRecord, SYSTEM_ACTOR, type AuditRecord } from '../src/audit/audit-event.js';
import type { AuditRecorder } from '../src/audit/audit-recorder.js';
import { AuditSpool } from '../src/audit/audit-spool.js';
import { createAuditWriter } from '../src/audit/audit-writer.js';
import { createAuditMetrics } from '../src/audit/audit.metrics.js';
import { insertEvents } from '../src/audit/audit.repository.js';
import { buildApp } from '../src/platform/app.js';
import { loadConfig } from '../src/platform/config.js';
import type { Db } from '../src/platform/db/transaction.js';
import { createDependencies } from '../src/platform/dependencies.js';
import { fakeResolver, signUp } from '../test/support/app.js';
import { createTestDatabase, type Backend } from '../test/support/database.js';
import { listenLocal } from './baselines.js';
import { createEnvironment } from './environments.js';
import type { BenchContext } from './settings.js';

/**
 * The audit trail's two costs, measured on one backend in the same run as their baselines:
 *
 * 1. Throughput of the batched writer (multi-row inserts, flushed by size or time) against
 *    writing the same events one INSERT at a time, the way an unbatched logger would.
 *    Target: at least 10 times the events per second.
 * 2. What auditing adds to a write request: the same PATCH /v1/projects/{project} through the
 *    real app, one request at a time over HTTP, with the recorder on (the event inserted in
 *    the change's transaction) and off (its methods swapped for ones that store nothing),
 *    the two alternating request by request so outside load falls on both alike.
 */
export const AUDIT_WRITER_TARGET = 10;
const SINGLE_ROW_EVENTS = 1_500;
const BATCHED_EVENTS = 20_000;
const LATENCY_WARM_UP = 30;
const LATENCY_REQUESTS = 300;

const silent = pino({ level: 'silent' });

function event(n: number): AuditRecord {
  return buildRecord(
    { action: 'bench.event', resource: { type: 'bench', id: String(n) }, details: { n } },
    {
      actor: SYSTEM_ACTOR,
      facts: { requestId: `bench-${n}`, clientIp: '127.0.0.1', userAgent: 'bench' },
    },
  );
}

/** Events per second, one INSERT (and one commit) per event. */
async function singleRowRate(db: Db): Promise<number> {
  const events = Array.from({ length: SINGLE_ROW_EVENTS }, (_, index) => event(index));
  const started = performance.now();
  for (const record of events) await insertEvents(db, [record]);
  return SINGLE_ROW_EVENTS / ((performance.now() - started) / 1000);
}

/** Events per second through the batched writer: from the first enqueue to all stored. */
async function batchedRate(db: Db): Promise<{ rate: number; meanBatch: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-audit-'));
  const registry = new Registry();
  const metrics = createAuditMetrics(registry);
  const writer = createAuditWriter({
    insert: (records) => insertEvents(db, records),
    spool: AuditSpool.open(join(dir, 'spool.ndjson')),
    logger: silent,
    metrics,
  });
  try {
    const events = Array.from({ length: BATCHED_EVENTS }, (_, index) =>
      event(SINGLE_ROW_EVENTS + index),
    );
    const started = performance.now();
    for (const record of events) writer.enqueue(record);
    await writer.flush();
    const seconds = (performance.now() - started) / 1000;
    if (writer.spoolDepth() > 0) throw new Error('the batched writer spooled during the benchmark');
    const { values } = await metrics.batchSize.get();
    const count = values.find(
      (value) =>
        (value as { metricName?: string }).metricName === 'switchyard_audit_batch_size_count',
    );
    const batches = count?.value ?? 1;
    return { rate: BATCHED_EVENTS / seconds, meanBatch: BATCHED_EVENTS / batches };
  } finally {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Latency {
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

function summarise(samples: number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (quantile: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))] ?? 0;
  return {
    meanMs: samples.reduce((sum, value) => sum + value, 0) / samples.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
  };
}

/** Turns the app's recorder off and on again; services and hooks all hold this one object. */
function recorderSwitch(recorder: AuditRecorder) {
  const on = { ...recorder };
  const off: AuditRecorder = {
    recordIn: async (_trx, input) =>
      buildRecord(input, {
        actor: SYSTEM_ACTOR,
        facts: { requestId: null, clientIp: null, userAgent: null },
      }),
    record: (input) =>
      buildRecord(input, {
        actor: SYSTEM_ACTOR,
        facts: { requestId: null, clientIp: null, userAgent: null },
      }),
    enqueue: () => undefined,
  };
  return (isAudited: boolean) => Object.assign(recorder, isAudited ? on : off);
}

async function writeLatency(backend: Backend): Promise<{ audited: Latency; unaudited: Latency }> {
  const environment = await createEnvironment(backend);
  const config = loadConfig({
    ...environment.env,
    SWITCHYARD_ROLE: 'api',
    LOG_LEVEL: 'silent',
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ADDRESS: '1000000',
    SWITCHYARD_AUTH_RATE_LIMIT_PER_ACCOUNT: '1000000',
  });
  const deps = await createDependencies(config, silent, { resolver: fakeResolver });
  const app = await buildApp(deps);
  try {
    const url = await listenLocal(app);
    const owner = await signUp(app);
    const slug = `bench-audit-${Date.now()}`;
    const created = await app.inject({
      method: 'POST',
      url: '/v1/projects',
      headers: owner.headers,
      payload: { name: 'Bench', slug },
    });
    if (created.statusCode !== 201) throw new Error(`project not created: ${created.body}`);

    const audit = recorderSwitch(deps.audit.recorder);
    const samples = { audited: [] as number[], unaudited: [] as number[] };
    for (let index = 0; index < (LATENCY_WARM_UP + LATENCY_REQUESTS) * 2; index++) {
      const isAudited = index % 2 === 0;
      audit(isAudited);
      const started = performance.now();
      const response = await fetch(`${url}/v1/projects/${slug}`, {
        method: 'PATCH',
        headers: { ...owner.headers, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `Bench ${index}` }),
      });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`PATCH answered ${response.status}`);
      if (index >= LATENCY_WARM_UP * 2)
        (isAudited ? samples.audited : samples.unaudited).push(performance.now() - started);
    }
    audit(true);
    return { audited: summarise(samples.audited), unaudited: summarise(samples.unaudited) };
  } finally {
    await app.close();
    await deps.close();
    await environment.dispose();
  }
}

/** Runs both measurements on `backend` and adds them to the report. */
export async function benchAudit(
  backend: Backend,
  context: Pick<BenchContext, 'report'>,
): Promise<void> {
  const { report } = context;
  const database = await createTestDatabase(backend);
  try {
    const single = await singleRowRate(database.database.db);
    const batched = await batchedRate(database.database.db);
    const ratio = batched.rate / single;
    report.addCheck({
      name: `audit writer on ${backend}: batched vs single-row events/s`,
      target: `>= ${AUDIT_WRITER_TARGET.toFixed(2)}`,
      measured: `${ratio.toFixed(1)} (${Math.round(batched.rate)} vs ${Math.round(single)} events/s; mean batch ${Math.round(batched.meanBatch)})`,
      isMet: ratio >= AUDIT_WRITER_TARGET,
    });
  } finally {
    await database.drop();
  }

  const { audited, unaudited } = await writeLatency(backend);
  const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(2)} ms`;
  const addedMs = audited.meanMs - unaudited.meanMs;
  report.addCheck({
    name: `audited PATCH /v1/projects/:project on ${backend}: added latency`,
    target: '-',
    measured:
      `${signed(addedMs)} mean (${((addedMs / unaudited.meanMs) * 100).toFixed(0)}%), ${signed(audited.p50Ms - unaudited.p50Ms)} p50; ` +
      `audited ${audited.meanMs.toFixed(2)} / p50 ${audited.p50Ms.toFixed(2)} / p99 ${audited.p99Ms.toFixed(2)} ms, ` +
      `unaudited ${unaudited.meanMs.toFixed(2)} / ${unaudited.p50Ms.toFixed(2)} / ${unaudited.p99Ms.toFixed(2)} ms`,
    isMet: undefined,
  });
}
