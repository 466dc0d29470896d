/**
 * The workload runtime: what runs a deployment's release and reports on it.
 *
 * Glossary
 * - workload: the running form of one deployment (a release in an environment).
 * - instance: one copy of a workload; `instances` copies run side by side.
 * - driver: a runtime implementation (`local` supervised processes, `kubernetes`).
 * - endpoint: the address of an instance that currently passes its health check; the
 *   router sends traffic only to endpoints.
 *
 * Every driver implements `RuntimeDriver`; callers never reach past this interface.
 */

import type { RunAs } from '../platform/workload-users.js';

export interface WorkloadSpec {
  deploymentId: string;
  releaseId: string;
  /** Slugs naming where the workload belongs. */
  labels: { project: string; environment: string; service: string };
  /** The folder the workload runs in (its working directory). */
  artifactPath: string;
  /** Run as given, without a shell: `{ command: '/bin/sh', args: ['-c', 'npm start'] }`. */
  start: { command: string; args: string[] };
  /** Configuration variables, passed byte-exact. */
  env: Record<string, string>;
  /** How many instances to run; 0 is allowed. */
  instances: number;
  /** Ignored by the local driver, which assigns PORT per instance. */
  port?: number;
  /** Path probed with HTTP GET, e.g. '/healthz'; 2xx and 3xx count as healthy. */
  healthCheckPath: string;
  /** Secret values in `env`: replaced by [REDACTED] in every line of the workload's output. */
  redact?: readonly string[];
  /**
   * The operating-system user the instances run as (the project's workload user); absent,
   * they run as Switchyard's own user.
   */
  runAs?: RunAs;
}

/** What `checkHealth` found: every instance probed just now, not the last cached state. */
export interface WorkloadHealth {
  /** True when the expected number of instances run and every one answered 2xx/3xx. */
  isHealthy: boolean;
  instances: Array<{ id: string; isHealthy: boolean; status?: number; error?: string }>;
}

export type InstanceState =
  'starting' | 'healthy' | 'unhealthy' | 'crashed' | 'restarting' | 'stopped';

export interface InstanceStatus {
  id: string;
  deploymentId: string;
  pid?: number;
  port: number;
  state: InstanceState;
  /** Restarts after crashes since the instance was first started. */
  restarts: number;
  lastExitCode?: number | null;
  startedAt: Date;
}

export type WorkloadEventType =
  'started' | 'healthy' | 'unhealthy' | 'crashed' | 'restarting' | 'stopped' | 'gave_up';

export interface WorkloadEvent {
  deploymentId: string;
  instanceId: string;
  type: WorkloadEventType;
  exitCode?: number | null;
  signal?: string | null;
  at: Date;
}

export interface LogLine {
  /** ISO 8601 timestamp of when the line was read. */
  at: string;
  instanceId: string;
  /** `system` lines are written by the runtime itself (started, exited, restarting). */
  stream: 'stdout' | 'stderr' | 'system';
  line: string;
}

export interface StartOptions {
  signal: AbortSignal;
  /**
   * How long start may wait for health, in milliseconds from the call. A value above 1e12
   * is read as an absolute epoch deadline instead, so either convention works.
   */
  deadlineMs: number;
}

export interface RuntimeDriver {
  readonly name: 'local' | 'kubernetes';
  /** Reaps instances a previous process of Switchyard left behind (pid files). */
  init(): Promise<void>;
  /**
   * Starts the workload's instances and resolves once every one answers its health check
   * with 2xx/3xx. Throws WorkloadStartError after stopping what it started. A deployment
   * that is already running is stopped first, so a retried start begins clean.
   */
  start(spec: WorkloadSpec, options: StartOptions): Promise<InstanceStatus[]>;
  /** Endpoints that currently pass health checks: what the router should send traffic to. */
  endpoints(deploymentId: string): Array<{ host: string; port: number }>;
  /** The deployment's instances; empty when it is not running. */
  status(deploymentId: string): InstanceStatus[];
  /** Stops instances: SIGTERM to each process group, wait up to drainMs, then SIGKILL. Idempotent. */
  stop(deploymentId: string, options?: { drainMs?: number }): Promise<void>;
  /** Workload output: past lines then, with follow, new ones until signal aborts. */
  logs(
    deploymentId: string,
    options: { follow: boolean; signal: AbortSignal; tail?: number },
  ): AsyncIterable<LogLine>;
  /**
   * Probes every instance of the deployment once, now, and reports whether all are healthy.
   * Secret rotation rolls a deployment to new instances with `start` (new configuration,
   * then the old instances are drained with `stop`) and calls this to verify the new ones
   * before it lets the old values go; a Kubernetes driver would read pod readiness and
   * probe the same path. A deployment that is not running reports no instances, unhealthy.
   */
  checkHealth(
    deploymentId: string,
    options: { signal: AbortSignal; timeoutMs?: number },
  ): Promise<WorkloadHealth>;
  /** Returns a function that removes the listener. */
  onEvent(listener: (event: WorkloadEvent) => void): () => void;
  /** Stops every instance it runs and every timer; nothing outlives it. */
  close(): Promise<void>;
}

/**
 * Why a start failed: an instance answered its health check with an error status
 * (`unhealthy`), kept exiting (`crashed`), never answered before the deadline (`timeout`),
 * or the caller aborted (`cancelled`).
 */
export type WorkloadStartFailure = 'unhealthy' | 'crashed' | 'timeout' | 'cancelled';

const START_FAILURE_MESSAGES: Record<WorkloadStartFailure, string> = {
  unhealthy: 'an instance answered its health check with an error status',
  crashed: 'an instance kept exiting',
  timeout: 'an instance did not answer its health check in time',
  cancelled: 'the start was cancelled',
};

/** Thrown by `RuntimeDriver.start`; the instances it started are already stopped. */
export class WorkloadStartError extends Error {
  readonly reason: WorkloadStartFailure;
  readonly deploymentId: string;
  /** The instances as they were when the start failed. */
  readonly instances: InstanceStatus[];

  constructor(
    reason: WorkloadStartFailure,
    deploymentId: string,
    instances: InstanceStatus[],
    options: { cause?: unknown } = {},
  ) {
    super(START_FAILURE_MESSAGES[reason], { cause: options.cause });
    this.name = 'WorkloadStartError';
    this.reason = reason;
    this.deploymentId = deploymentId;
    this.instances = instances;
  }
}
