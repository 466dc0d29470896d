import type { Logger } from 'pino';
import { makeWorkloadFolder, removeWorkloadFolder } from '../../platform/workload-users.js';

import type {
  InstanceState,
  InstanceStatus,
  LogLine,
  WorkloadEventType,
  WorkloadSpec,
} from '../runtime.js';
import { buildChildEnv } from './child-env.js';
import type { BaseEnv } from './child-env.js';
import { probeHealth } from './health-probe.js';
import type { ProbeResult } from './health-probe.js';
import { InstanceProcess } from './instance-process.js';
import type { ProcessExit } from './instance-process.js';
import { removePidFile, writePidFile } from './pid-files.js';
import type { PortAllocator } from './ports.js';
import { RestartTracker } from './restart-policy.js';
import type { RestartPolicy } from './restart-policy.js';

const KILL_WAIT_MS = 5_000;
const OUTPUT_WAIT_MS = 1_000;

export interface SupervisorSettings {
  healthIntervalMs: number;
  /** Probe interval while an instance is starting, so start() notices health quickly. */
  startProbeMs: number;
  probeTimeoutMs: number;
  /** Consecutive failed probes that make a healthy instance unhealthy. */
  unhealthyThreshold: number;
  restartPolicy: RestartPolicy;
  baseEnv: BaseEnv;
}

export interface SupervisorContext {
  instanceId: string;
  spec: WorkloadSpec;
  settings: SupervisorSettings;
  ports: PortAllocator;
  pidDir: string;
  homeDir: string;
  logger: Logger;
  writeLog: (stream: LogLine['stream'], line: string) => void;
  emit: (
    type: WorkloadEventType,
    exit?: { exitCode: number | null; signal: string | null },
  ) => void;
}

/** How a start is going for one instance: what `start()` waits on. */
export type StartProgress = 'healthy' | 'waiting' | 'crashed' | 'unhealthy' | 'stopped';

/**
 * Runs one instance: spawns it, probes its health, restarts it after crashes with backoff
 * until the restart policy gives up, and stops it on request. Every state change is
 * emitted as a workload event.
 */
export class InstanceSupervisor {
  readonly #context: SupervisorContext;
  readonly #restarts: RestartTracker;
  readonly #probeAbort = new AbortController();
  #state: InstanceState = 'starting';
  #port = 0;
  #process: InstanceProcess | undefined;
  #restartCount = 0;
  #lastExitCode: number | null | undefined;
  #startedAt = new Date();
  #failedProbes = 0;
  #lastProbe: ProbeResult | undefined;
  #hasGivenUp = false;
  #probeTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #launching: Promise<void> | undefined;
  #probing: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** A crash's pid file removal, which the next launch's write must follow. */
  #pidFileRemoval: Promise<void> | undefined;

  constructor(context: SupervisorContext) {
    this.#context = context;
    this.#restarts = new RestartTracker(context.settings.restartPolicy);
  }

  get id(): string {
    return this.#context.instanceId;
  }

  get endpoint(): { host: string; port: number } | undefined {
    return this.#state === 'healthy' ? { host: '127.0.0.1', port: this.#port } : undefined;
  }

  start(): Promise<void> {
    this.#launching = this.#launch();
    return this.#launching;
  }

  status(): InstanceStatus {
    const child = this.#process;
    return {
      id: this.#context.instanceId,
      deploymentId: this.#context.spec.deploymentId,
      ...(child?.isRunning && child.pid !== undefined ? { pid: child.pid } : {}),
      port: this.#port,
      state: this.#state,
      restarts: this.#restartCount,
      ...(this.#lastExitCode !== undefined ? { lastExitCode: this.#lastExitCode } : {}),
      startedAt: this.#startedAt,
    };
  }

  /** How far a start has come; `crashed` only once the restart policy gave up. */
  startProgress(): StartProgress {
    switch (this.#state) {
      case 'healthy':
        return 'healthy';
      case 'stopped':
        return 'stopped';
      case 'crashed':
        return this.#hasGivenUp ? 'crashed' : 'waiting';
      case 'starting':
      case 'unhealthy':
      case 'restarting':
        return 'waiting';
    }
  }

  /**
   * Why this instance is not healthy yet, for a start that ran out of time: `unhealthy` only
   * when it answered with an error status, `timeout` when it stayed silent.
   */
  failureAtDeadline(): 'crashed' | 'unhealthy' | 'timeout' {
    if (this.#restartCount > 0 || this.#state === 'crashed') return 'crashed';
    if (this.#lastProbe?.status !== undefined) return 'unhealthy';
    return 'timeout';
  }

  /** SIGTERM to the process group, up to `drainMs` to exit, then SIGKILL. Idempotent. */
  stop(drainMs: number): Promise<void> {
    this.#stopping ??= this.#shutdown(drainMs);
    return this.#stopping;
  }

  async #launch(): Promise<void> {
    const { ports, homeDir, spec, instanceId } = this.#context;
    try {
      this.#port = await ports.reserve(this.#port === 0 ? undefined : this.#port);
      await makeWorkloadFolder(homeDir, spec.runAs);
    } catch (error) {
      this.#onCrash({ exitCode: null, signal: null, error: asError(error) });
      return;
    }
    if (this.#stopping) return;

    this.#state = 'starting';
    this.#failedProbes = 0;
    this.#lastProbe = undefined;
    this.#startedAt = new Date();
    const env = buildChildEnv({
      baseEnv: this.#context.settings.baseEnv,
      home: homeDir,
      specEnv: spec.env,
      port: this.#port,
      instanceId,
    });

    let child: InstanceProcess;
    try {
      child = new InstanceProcess({
        command: spec.start.command,
        args: spec.start.args,
        cwd: spec.artifactPath,
        runAs: spec.runAs,
        env,
        onLine: (stream, line) => this.#context.writeLog(stream, line),
      });
    } catch (error) {
      this.#process = undefined;
      this.#onCrash({ exitCode: null, signal: null, error: asError(error) });
      return;
    }
    this.#process = child;
    void child.exited.then((exit) => this.#onExit(child, exit));
    if (child.pid === undefined) return; // the spawn failed; `exited` reports it

    this.#context.writeLog('system', `instance started (pid ${child.pid}, port ${this.#port})`);
    this.#context.emit('started');
    await this.#recordPid(child.pid);
    this.#scheduleProbe(child, this.#context.settings.startProbeMs);
  }

  async #recordPid(pid: number): Promise<void> {
    const { pidDir, instanceId, spec, logger } = this.#context;
    await this.#pidFileRemoval;
    try {
      await writePidFile(pidDir, { instanceId, deploymentId: spec.deploymentId, pid });
    } catch (error) {
      logger.warn({ err: error, instanceId }, 'pid file not written');
    }
  }

  #scheduleProbe(child: InstanceProcess, delayMs: number): void {
    if (this.#stopping) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#probing = this.#probe(child);
    }, delayMs);
  }

  async #probe(child: InstanceProcess): Promise<void> {
    const { settings, spec } = this.#context;
    const result = await probeHealth(this.#port, spec.healthCheckPath, {
      timeoutMs: settings.probeTimeoutMs,
      signal: this.#probeAbort.signal,
    });
    if (child !== this.#process || this.#stopping || !child.isRunning) return;

    this.#lastProbe = result;
    if (result.isHealthy) {
      this.#failedProbes = 0;
      if (this.#state !== 'healthy') this.#transition('healthy', 'healthy');
    } else {
      this.#failedProbes++;
      const isFailing = this.#failedProbes >= settings.unhealthyThreshold;
      if (this.#state === 'healthy' && isFailing) this.#becomeUnhealthy(result);
    }
    const isStarting = this.#state === 'starting';
    this.#scheduleProbe(child, isStarting ? settings.startProbeMs : settings.healthIntervalMs);
  }

  #becomeUnhealthy(result: ProbeResult): void {
    const reason = result.status === undefined ? 'no answer' : `status ${result.status}`;
    this.#context.writeLog('system', `health check failing (${reason})`);
    this.#context.logger.warn(
      { instanceId: this.id, status: result.status, failedProbes: this.#failedProbes },
      'instance unhealthy',
    );
    this.#transition('unhealthy', 'unhealthy');
  }

  #onExit(child: InstanceProcess, exit: ProcessExit): void {
    if (child !== this.#process || this.#stopping) return;
    clearTimeout(this.#probeTimer);
    // Whatever the leader left behind in its group goes with it.
    child.signalGroup('SIGKILL');
    this.#pidFileRemoval = removePidFile(this.#context.pidDir, this.id).catch(() => undefined);
    this.#onCrash(exit);
  }

  /** Restarts after backoff, or gives up when the restart policy says so. */
  #onCrash(exit: ProcessExit): void {
    if (this.#stopping) return;
    this.#lastExitCode = exit.exitCode;
    this.#context.writeLog('system', describeExit(exit));
    this.#transition('crashed', 'crashed', { exitCode: exit.exitCode, signal: exit.signal });

    const decision = this.#restarts.next(Date.now());
    if (decision.giveUp) {
      this.#hasGivenUp = true;
      this.#context.writeLog('system', `gave up after ${this.#restartCount} restarts`);
      this.#context.logger.warn(
        { instanceId: this.id, restarts: this.#restartCount },
        'instance gave up',
      );
      this.#context.emit('gave_up', { exitCode: exit.exitCode, signal: exit.signal });
      return;
    }

    this.#restartCount++;
    this.#context.writeLog('system', `restarting in ${decision.delayMs} ms`);
    this.#transition('restarting', 'restarting');
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.start();
    }, decision.delayMs);
  }

  async #shutdown(drainMs: number): Promise<void> {
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#probeTimer);
    this.#probeAbort.abort();
    await Promise.all([this.#launching, this.#probing]);

    const child = this.#process;
    const exit = child?.isRunning ? await this.#terminate(child, drainMs) : undefined;
    await removePidFile(this.#context.pidDir, this.id).catch(() => undefined);
    const { homeDir, spec } = this.#context;
    await removeWorkloadFolder(homeDir, spec.runAs).catch(() => undefined);
    this.#context.ports.release(this.#port);

    if (exit) this.#lastExitCode = exit.exitCode;
    this.#context.writeLog('system', 'instance stopped');
    this.#transition('stopped', 'stopped', {
      exitCode: exit?.exitCode ?? null,
      signal: exit?.signal ?? null,
    });
  }

  async #terminate(child: InstanceProcess, drainMs: number): Promise<ProcessExit | undefined> {
    child.signalGroup('SIGTERM');
    let exit = await within(child.exited, drainMs);
    if (!exit) {
      this.#context.writeLog('system', `no exit within ${drainMs} ms; killing`);
      child.signalGroup('SIGKILL');
      exit = await within(child.exited, KILL_WAIT_MS);
    }
    if (!exit)
      this.#context.logger.error(
        { instanceId: this.id, pid: child.pid },
        'instance survived SIGKILL',
      );
    child.signalGroup('SIGKILL');
    await within(child.outputClosed, OUTPUT_WAIT_MS);
    return exit;
  }

  #transition(
    state: InstanceState,
    type: WorkloadEventType,
    exit?: { exitCode: number | null; signal: string | null },
  ): void {
    this.#state = state;
    this.#context.emit(type, exit);
  }
}

function describeExit(exit: ProcessExit): string {
  if (exit.error) return `instance failed to start: ${exit.error.message}`;
  if (exit.signal) return `instance exited on ${exit.signal}`;
  return `instance exited with code ${exit.exitCode}`;
}

/** The promise's value, or undefined when `ms` pass first. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
