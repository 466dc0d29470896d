import type { Backend } from '../test/support/database.js';
import type { LoadGenerator } from './load.js';
import type { Report } from './report.js';

export type Part = 'api' | 'router' | 'half-peak' | 'startup' | 'audit';

/** How one benchmark run is shaped; read once from BENCH_* variables. */
export interface BenchSettings {
  durationS: number;
  warmUpS: number;
  connections: number;
  /** Each comparison runs baseline and subject this many times, alternating order. */
  rounds: number;
  startups: number;
  backends: Backend[];
  parts: Part[];
}

/** What every part of the run shares. */
export interface BenchContext {
  settings: BenchSettings;
  report: Report;
  load: LoadGenerator;
}

type Env = Record<string, string | undefined>;

function positiveInt(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name}: expected a positive integer, got "${raw}"`);
  }
  return value;
}

function list<T extends string>(env: Env, name: string, allowed: readonly T[]): T[] {
  const raw = env[name];
  if (raw === undefined || raw === '') return [...allowed];
  const picked = raw.split(',').map((item) => item.trim());
  const unknown = picked.filter((item) => !(allowed as readonly string[]).includes(item));
  if (unknown.length > 0)
    throw new Error(`${name}: unknown ${unknown.join(', ')}; use ${allowed.join(',')}`);
  return picked as T[];
}

export function readSettings(env: Env = process.env): BenchSettings {
  return {
    durationS: positiveInt(env, 'BENCH_DURATION_S', 5),
    warmUpS: positiveInt(env, 'BENCH_WARMUP_S', 1),
    connections: positiveInt(env, 'BENCH_CONNECTIONS', 50),
    rounds: positiveInt(env, 'BENCH_ROUNDS', 1),
    startups: positiveInt(env, 'BENCH_STARTUPS', 3),
    backends: list(env, 'BENCH_BACKENDS', ['postgres', 'pglite'] as const),
    parts: list(env, 'BENCH_PARTS', ['api', 'router', 'half-peak', 'startup', 'audit'] as const),
  };
}
