import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LoadFigures, LoadJob } from './load-process.js';
import { cpuMicrosOf } from './processes.js';
import type { BenchSettings } from './settings.js';

/** Where one side of a comparison sends its load. */
export interface LoadTarget {
  label: string;
  url: string;
  headers?: Record<string, string>;
  /** GET when absent; a write sends `body` (give its content-type in `headers`). */
  method?: LoadJob['method'];
  body?: string;
  /** Other processes doing this target's work (an upstream app, database backends). */
  helperPids?: () => Promise<number[]>;
}

export interface LoadResult {
  label: string;
  requestsPerSec: number;
  p99Ms: number;
  /** Connection errors, timeouts and non-2xx answers: a run with any is suspect. */
  failures: number;
  /** CPU time the servers spent per request: this process plus the target's helpers. */
  cpuUsPerRequest: number;
}

export interface Comparison {
  subject: LoadResult;
  baseline: LoadResult;
  /** subject req/s ÷ baseline req/s. */
  ratio: number;
  /** baseline CPU per request ÷ subject's: the same comparison, steadier on a busy machine. */
  cpuRatio: number;
}

const LOAD_PROCESS = fileURLToPath(new URL('./load-process.ts', import.meta.url));
/** CPU time so far of this process (every thread) and of the given ones. */
function cpuMicros(pids: number[]): number {
  const own = process.cpuUsage();
  return own.user + own.system + pids.reduce((sum, pid) => sum + cpuMicrosOf(pid), 0);
}

/** autocannon in a child process, reused for every run. */
export class LoadGenerator {
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static start(): LoadGenerator {
    const child = fork(LOAD_PROCESS, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    return new LoadGenerator(child);
  }

  /** A closed-loop run, or with `overallRate` an open-loop one at that many requests per second. */
  async run(
    target: LoadTarget,
    connections: number,
    durationS: number,
    overallRate?: number,
  ): Promise<LoadResult> {
    const pids = (await target.helperPids?.()) ?? [];
    const before = cpuMicros(pids);
    const figures = await this.#ask({
      url: target.url,
      headers: target.headers ?? {},
      ...(target.method === undefined ? {} : { method: target.method }),
      ...(target.body === undefined ? {} : { body: target.body }),
      connections,
      durationS,
      ...(overallRate === undefined ? {} : { overallRate }),
    });
    const spent = cpuMicros(pids) - before;
    return {
      label: target.label,
      requestsPerSec: figures.requestsPerSec,
      p99Ms: figures.p99Ms,
      failures: figures.failures,
      cpuUsPerRequest: figures.requests === 0 ? 0 : spent / figures.requests,
    };
  }

  async #ask(job: LoadJob): Promise<LoadFigures> {
    const answer = once(this.#child, 'message');
    this.#child.send(job);
    const [message] = (await answer) as [{ figures?: LoadFigures; error?: string }];
    if (message.figures === undefined)
      throw new Error(`load run failed: ${message.error ?? 'no answer'}`);
    return message.figures;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.disconnect();
    await exited;
  }
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / Math.max(values.length, 1);
}

function combine(label: string, runs: LoadResult[]): LoadResult {
  return {
    label,
    requestsPerSec: mean(runs.map((run) => run.requestsPerSec)),
    p99Ms: mean(runs.map((run) => run.p99Ms)),
    failures: runs.reduce((sum, run) => sum + run.failures, 0),
    cpuUsPerRequest: mean(runs.map((run) => run.cpuUsPerRequest)),
  };
}

/** A warm-up run, then a measured one. */
export async function measure(
  load: LoadGenerator,
  target: LoadTarget,
  settings: BenchSettings,
): Promise<LoadResult> {
  await load.run(target, settings.connections, settings.warmUpS);
  return load.run(target, settings.connections, settings.durationS);
}

/**
 * Warms both sides, then runs them back to back `rounds` times, swapping which goes first
 * each round so that drift in the machine's load falls on both alike.
 */
export async function compare(
  load: LoadGenerator,
  subject: LoadTarget,
  baseline: LoadTarget,
  settings: BenchSettings,
): Promise<Comparison> {
  await load.run(baseline, settings.connections, settings.warmUpS);
  await load.run(subject, settings.connections, settings.warmUpS);

  const subjectRuns: LoadResult[] = [];
  const baselineRuns: LoadResult[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? [baseline, subject] : [subject, baseline];
    for (const target of order) {
      const result = await load.run(target, settings.connections, settings.durationS);
      (target === subject ? subjectRuns : baselineRuns).push(result);
    }
  }

  const subjectResult = combine(subject.label, subjectRuns);
  const baselineResult = combine(baseline.label, baselineRuns);
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return {
    subject: subjectResult,
    baseline: baselineResult,
    ratio: ratio(subjectResult.requestsPerSec, baselineResult.requestsPerSec),
    cpuRatio: ratio(baselineResult.cpuUsPerRequest, subjectResult.cpuUsPerRequest),
  };
}
