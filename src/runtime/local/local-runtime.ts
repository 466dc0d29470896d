import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

import { AppError } from '../../platform/errors.js';
import { removeWorkloadFolder } from '../../platform/workload-users.js';
import { WorkloadStartError } from '../runtime.js';
import type {
  InstanceStatus,
  LogLine,
  RuntimeDriver,
  StartOptions,
  WorkloadEvent,
  WorkloadEventType,
  WorkloadHealth,
  WorkloadSpec,
  WorkloadStartFailure,
} from '../runtime.js';
import { createRedactor } from '../../builds/log-redaction.js';
import { assertPassableEnv } from './child-env.js';
import type { BaseEnv } from './child-env.js';
import { probeHealth } from './health-probe.js';
import { InstanceSupervisor } from './instance-supervisor.js';
import type { SupervisorSettings } from './instance-supervisor.js';
import { pidDirectory, reapOrphans } from './pid-files.js';
import { PortAllocator } from './ports.js';
import { LogAnnouncer, WorkloadLogWriter, logFilePath, readLog } from './workload-logs.js';

export interface LocalRuntimeOptions {
  /** Holds logs/, pids/ and homes/ (each instance's HOME). */
  stateDir: string;
  logger: Logger;
  healthIntervalMs?: number;
  probeTimeoutMs?: number;
  unhealthyThreshold?: number;
  restartBackoff?: { initialMs: number; maxMs: number };
  /** Restarts allowed within `restartWindowMs` before an instance gives up. */
  maxRestarts?: number;
  restartWindowMs?: number;
  /** Default time a stopping instance gets between SIGTERM and SIGKILL. */
  drainMs?: number;
  /** Size at which a deployment's log file rotates (one previous part is kept). */
  logMaxBytes?: number;
  /** PATH and LANG for workloads; never the parent's whole environment. */
  baseEnv?: BaseEnv;
}

const DEFAULT_HEALTH_INTERVAL_MS = 2_000;
const DEFAULT_PROBE_TIMEOUT_MS = 2_000;
const START_PROBE_MS = 100;
const DEFAULT_UNHEALTHY_THRESHOLD = 3;
const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000 };
const DEFAULT_MAX_RESTARTS = 5;
const DEFAULT_RESTART_WINDOW_MS = 60_000;
const DEFAULT_DRAIN_MS = 10_000;
const EPOCH_THRESHOLD_MS = 1e12;
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

interface Workload {
  spec: WorkloadSpec;
  supervisors: InstanceSupervisor[];
  log: WorkloadLogWriter;
  /** Called after every event of this workload; start() waits through these. */
  watchers: Set<() => void>;
  stopping?: Promise<void>;
}

/** The `local` driver: each instance a supervised child process on a port of 127.0.0.1. */
export function createLocalRuntime(options: LocalRuntimeOptions): RuntimeDriver {
  return new LocalRuntime(options);
}

class LocalRuntime implements RuntimeDriver {
  readonly name = 'local' as const;
  readonly #options: LocalRuntimeOptions;
  readonly #settings: SupervisorSettings;
  readonly #logger: Logger;
  readonly #ports = new PortAllocator('127.0.0.1');
  readonly #announcer = new LogAnnouncer();
  readonly #workloads = new Map<string, Workload>();
  readonly #listeners = new Set<(event: WorkloadEvent) => void>();
  readonly #closed = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(options: LocalRuntimeOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ runtime: 'local' });
    const healthIntervalMs = options.healthIntervalMs ?? DEFAULT_HEALTH_INTERVAL_MS;
    this.#settings = {
      healthIntervalMs,
      startProbeMs: Math.min(START_PROBE_MS, healthIntervalMs),
      probeTimeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      unhealthyThreshold: options.unhealthyThreshold ?? DEFAULT_UNHEALTHY_THRESHOLD,
      restartPolicy: {
        ...(options.restartBackoff ?? DEFAULT_BACKOFF),
        maxRestarts: options.maxRestarts ?? DEFAULT_MAX_RESTARTS,
        windowMs: options.restartWindowMs ?? DEFAULT_RESTART_WINDOW_MS,
      },
      baseEnv: options.baseEnv ?? {},
    };
  }

  async init(): Promise<void> {
    const live = new Set(this.#allSupervisors().map((supervisor) => supervisor.id));
    await this.#ensureDirectories();
    await reapOrphans(this.#pidDir, live, this.#logger, this.#drainMs());

    const homes = await fs.readdir(this.#homesDir).catch(() => []);
    const leftovers = homes.filter((name) => !live.has(name));
    await Promise.all(leftovers.map((name) => removeLeftoverHome(path.join(this.#homesDir, name))));
  }

  async start(spec: WorkloadSpec, options: StartOptions): Promise<InstanceStatus[]> {
    if (this.#closing) throw new Error('local runtime is closed');
    assertSafeId(spec.deploymentId);
    assertPassableEnv(spec.env);
    if (!Number.isInteger(spec.instances) || spec.instances < 0) {
      throw new AppError('VALIDATION_FAILED', 'instances must be a whole number, 0 or more');
    }
    if (options.signal.aborted) throw new WorkloadStartError('cancelled', spec.deploymentId, []);

    await this.stop(spec.deploymentId);
    await this.#ensureDirectories();
    const workload = this.#createWorkload(spec);
    this.#workloads.set(spec.deploymentId, workload);
    this.#logger.info(
      { deploymentId: spec.deploymentId, instances: spec.instances },
      'workload starting',
    );

    const outcome = await this.#launchAndWait(workload, options);
    if (outcome === 'healthy') return this.status(spec.deploymentId);

    const instances = workload.supervisors.map((supervisor) => supervisor.status());
    this.#logger.warn(
      { deploymentId: spec.deploymentId, reason: outcome },
      'workload start failed',
    );
    await this.#stopWorkload(workload, this.#drainMs());
    throw new WorkloadStartError(outcome, spec.deploymentId, instances);
  }

  endpoints(deploymentId: string): Array<{ host: string; port: number }> {
    const supervisors = this.#workloads.get(deploymentId)?.supervisors ?? [];
    return supervisors.flatMap((supervisor) => supervisor.endpoint ?? []);
  }

  status(deploymentId: string): InstanceStatus[] {
    const supervisors = this.#workloads.get(deploymentId)?.supervisors ?? [];
    return supervisors.map((supervisor) => supervisor.status());
  }

  async stop(deploymentId: string, options: { drainMs?: number } = {}): Promise<void> {
    const workload = this.#workloads.get(deploymentId);
    if (workload) await this.#stopWorkload(workload, options.drainMs ?? this.#drainMs());
  }

  logs(
    deploymentId: string,
    options: { follow: boolean; signal: AbortSignal; tail?: number },
  ): AsyncIterable<LogLine> {
    assertSafeId(deploymentId);
    return readLog(logFilePath(this.#options.stateDir, deploymentId), {
      follow: options.follow,
      signal: AbortSignal.any([options.signal, this.#closed.signal]),
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
      subscribe: (listener) => this.#announcer.subscribe(deploymentId, listener),
    });
  }

  async checkHealth(
    deploymentId: string,
    options: { signal: AbortSignal; timeoutMs?: number },
  ): Promise<WorkloadHealth> {
    const workload = this.#workloads.get(deploymentId);
    if (workload === undefined) return { isHealthy: false, instances: [] };
    const timeoutMs = options.timeoutMs ?? this.#settings.probeTimeoutMs;
    const instances = await Promise.all(
      workload.supervisors.map(async (supervisor) => {
        const { id, port, state } = supervisor.status();
        if (state !== 'healthy') return { id, isHealthy: false, error: `instance is ${state}` };
        const probe = await probeHealth(port, workload.spec.healthCheckPath, {
          timeoutMs,
          signal: options.signal,
        });
        return { id, ...probe };
      }),
    );
    const isHealthy =
      instances.length === workload.spec.instances && instances.every((i) => i.isHealthy);
    return { isHealthy, instances };
  }

  onEvent(listener: (event: WorkloadEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    this.#closed.abort();
    const workloads = [...this.#workloads.values()];
    await Promise.all(workloads.map((workload) => this.#stopWorkload(workload, this.#drainMs())));
    this.#listeners.clear();
  }

  #createWorkload(spec: WorkloadSpec): Workload {
    const { deploymentId } = spec;
    const log = new WorkloadLogWriter(
      logFilePath(this.#options.stateDir, deploymentId),
      () => this.#announcer.announce(deploymentId),
      this.#options.logMaxBytes,
    );
    const workload: Workload = { spec, supervisors: [], log, watchers: new Set() };
    const redactor = createRedactor(spec.redact ?? []);

    for (let index = 0; index < spec.instances; index++) {
      const instanceId = `${deploymentId}-${index}-${randomBytes(3).toString('hex')}`;
      const supervisor = new InstanceSupervisor({
        instanceId,
        spec,
        settings: this.#settings,
        ports: this.#ports,
        pidDir: this.#pidDir,
        homeDir: path.join(this.#homesDir, instanceId),
        logger: this.#logger.child({ deploymentId, instanceId }),
        writeLog: (stream, line) =>
          log.append({
            at: new Date().toISOString(),
            instanceId,
            stream,
            line: redactor.redact(line),
          }),
        emit: (type, exit) => this.#emit(workload, instanceId, type, exit),
      });
      workload.supervisors.push(supervisor);
    }
    return workload;
  }

  /** Starts every instance; settles on all healthy, a failure, the deadline or the abort. */
  #launchAndWait(
    workload: Workload,
    options: StartOptions,
  ): Promise<'healthy' | WorkloadStartFailure> {
    const { signal, deadlineMs } = options;
    const timeoutMs = deadlineMs > EPOCH_THRESHOLD_MS ? deadlineMs - Date.now() : deadlineMs;

    return new Promise((resolve) => {
      const finish = (outcome: 'healthy' | WorkloadStartFailure): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        workload.watchers.delete(check);
        resolve(outcome);
      };
      const onAbort = (): void => finish('cancelled');
      const check = (): void => {
        const progress = workload.supervisors.map((supervisor) => supervisor.startProgress());
        if (progress.every((state) => state === 'healthy')) finish('healthy');
        else if (progress.includes('crashed')) finish('crashed');
        else if (progress.includes('stopped')) finish('cancelled');
      };
      const timer = setTimeout(() => finish(failureAtDeadline(workload)), Math.max(0, timeoutMs));

      signal.addEventListener('abort', onAbort);
      workload.watchers.add(check);
      for (const supervisor of workload.supervisors) void supervisor.start();
      check();
    });
  }

  #stopWorkload(workload: Workload, drainMs: number): Promise<void> {
    workload.stopping ??= (async () => {
      const { deploymentId } = workload.spec;
      await Promise.all(workload.supervisors.map((supervisor) => supervisor.stop(drainMs)));
      await workload.log.flush();
      if (this.#workloads.get(deploymentId) === workload) this.#workloads.delete(deploymentId);
      this.#logger.info({ deploymentId }, 'workload stopped');
    })();
    return workload.stopping;
  }

  #emit(
    workload: Workload,
    instanceId: string,
    type: WorkloadEventType,
    exit?: { exitCode: number | null; signal: string | null },
  ): void {
    const { deploymentId } = workload.spec;
    const event: WorkloadEvent = { deploymentId, instanceId, type, ...exit, at: new Date() };
    this.#logger.info({ deploymentId, instanceId, type, ...exit }, 'instance event');

    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#logger.error({ err: error, type }, 'workload event listener failed');
      }
    }
    for (const watcher of workload.watchers) watcher();
  }

  #allSupervisors(): InstanceSupervisor[] {
    return [...this.#workloads.values()].flatMap((workload) => workload.supervisors);
  }

  #drainMs(): number {
    return this.#options.drainMs ?? DEFAULT_DRAIN_MS;
  }

  get #pidDir(): string {
    return pidDirectory(this.#options.stateDir);
  }

  get #homesDir(): string {
    return path.join(this.#options.stateDir, 'homes');
  }

  /**
   * logs/ and pids/ are Switchyard's alone. Instances running as workload users must pass
   * through the state folder and homes/ to reach their own HOME, so those two can be
   * traversed (0711) but not listed; each HOME inside is its instance user's, 0700.
   */
  async #ensureDirectories(): Promise<void> {
    const { stateDir } = this.#options;
    for (const dir of [path.join(stateDir, 'logs'), this.#pidDir]) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    }
    for (const dir of [stateDir, this.#homesDir]) {
      await fs.mkdir(dir, { recursive: true, mode: 0o711 });
      await fs.chmod(dir, 0o711);
    }
  }
}

/** The most telling reason among instances that were not healthy in time. */
function failureAtDeadline(workload: Workload): WorkloadStartFailure {
  const reasons = workload.supervisors
    .filter((supervisor) => supervisor.startProgress() !== 'healthy')
    .map((supervisor) => supervisor.failureAtDeadline());
  if (reasons.includes('crashed')) return 'crashed';
  if (reasons.includes('unhealthy')) return 'unhealthy';
  return 'timeout';
}

/** Ids become file names; anything that could leave the state folder is refused. */
function assertSafeId(deploymentId: string): void {
  if (!SAFE_ID.test(deploymentId) || deploymentId.includes('..')) {
    throw new AppError('VALIDATION_FAILED', 'deployment id is not a safe identifier');
  }
}

/** A HOME a previous Switchyard process left: removed as the user who owns it. */
async function removeLeftoverHome(home: string): Promise<void> {
  const info = await fs.lstat(home).catch(() => undefined);
  if (info === undefined) return;
  const isOthers = info.isDirectory() && info.uid !== process.getuid?.();
  await removeWorkloadFolder(home, isOthers ? { uid: info.uid, gid: info.gid } : undefined);
}
