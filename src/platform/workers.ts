import { hostname } from 'node:os';
import type { Dependencies } from './dependencies.js';
import type { JobDefinition } from './queue.js';
import { every, startElection, startHeartbeat, type Loop } from './leadership.js';
import { listOrphanedWork, pruneWorkers } from './leases.repository.js';
import { BUILD_RUN } from '../builds/build.jobs.js';
import { reapOrphanedBuilds } from '../builds/build-process.js';
import { DEPLOYMENT_RECONCILE } from '../deployments/deployment.jobs.js';
import { SECRET_ROTATE } from '../secrets/rotation.jobs.js';
import { IDENTITY_PURGE, IDENTITY_SIGN_UP_MAIL, startIdentityWork } from '../auth/identity.jobs.js';
import { openAuditScope, runInAuditScope } from '../audit/audit-context.js';
import type { JobSubject } from '../audit/audit.repository.js';

/** The lease whose holder runs the reconciler, the router and the local workloads. */
export const RECONCILER_LEASE = 'deployment-reconciler';

/** Re-queues builds and deployments whose worker died mid-way; their claims have lapsed. */
async function requeueOrphans(deps: Dependencies): Promise<void> {
  const { database, queue, worker, logger } = deps;
  const orphans = await listOrphanedWork(database.db, worker.staleMs);
  for (const buildId of orphans.buildIds) await queue.send(BUILD_RUN, { buildId });
  for (const deploymentId of orphans.deploymentIds)
    await queue.send(DEPLOYMENT_RECONCILE, { deploymentId });
  if (orphans.buildIds.length + orphans.deploymentIds.length > 0) {
    logger.warn(
      { builds: orphans.buildIds, deployments: orphans.deploymentIds },
      'work of a dead worker re-queued',
    );
  }
  await pruneWorkers(database.db, worker.staleMs * 6);
}

type Timed = (job: string, work: () => Promise<void>, subject?: JobSubject) => Promise<void>;

/**
 * What only the leader does: run workloads behind the router (the local runtime is one
 * machine's), reconcile deployments, and take over work that dead workers claimed.
 *
 * Losing the lease (a stalled process, or a database unreachable for longer than the lease)
 * ends all of it here: the leader's jobs are cancelled, the sweeper stops, the router closes
 * its port and this process's workloads stop, so that nothing answers for apps another leader
 * now runs. The runtime stays open, and winning the lease again starts it all over; `close()`
 * of the dependencies ends them for good.
 */
function createLeaderDuties(deps: Dependencies, shutdown: AbortSignal, timed: Timed) {
  const { queue, config, logger } = deps;
  let sweeper: Loop | undefined;
  // Deployments whose instances this process started: what to stop when deposed.
  const started = new Set<string>();
  const unsubscribe = deps.runtime?.onEvent((event) => {
    if (event.type === 'started') started.add(event.deploymentId);
  });
  return {
    /** `term` aborts when this term of leadership ends. */
    async start(term: AbortSignal) {
      const { reconciler, runtime, router } = deps;
      if (reconciler === undefined || runtime === undefined || router === undefined) return;
      const signal = AbortSignal.any([shutdown, term]);
      await runtime.init();
      const port = await router.listen();
      logger.info({ port }, 'router listening');
      await queue.work(DEPLOYMENT_RECONCILE, (data) =>
        timed(DEPLOYMENT_RECONCILE.name, () => reconciler.reconcile(data.deploymentId, signal), {
          kind: 'deployment',
          id: data.deploymentId,
        }),
      );
      await reconciler.restoreLive(signal);
      const rotations = deps.lockbox.runner;
      if (rotations !== undefined) {
        // After restoreLive: a rotation a crash left part-way is settled against running workloads.
        await rotations.recover(signal);
        await queue.define(SECRET_ROTATE);
        await queue.work(SECRET_ROTATE, (data) =>
          timed(SECRET_ROTATE.name, () => rotations.run(data.rotationId, signal), {
            kind: 'rotation',
            id: data.rotationId,
          }),
        );
      }
      sweeper = every(config.process.heartbeatIntervalMs, logger, 'orphan sweep', () =>
        requeueOrphans(deps),
      );
    },
    async stop() {
      await sweeper?.stop();
      sweeper = undefined;
      await queue.offWork(DEPLOYMENT_RECONCILE).catch(() => undefined);
      await queue.offWork(SECRET_ROTATE).catch(() => undefined);
      // Drains the requests it proxies, then refuses connections until this process leads again.
      await deps.router?.close();
      const ids = [...started];
      started.clear();
      await deps.reconciler?.stopDeployments(ids);
    },
    close() {
      unsubscribe?.();
    },
  };
}

export interface Workers {
  /** Stops taking jobs, cancels running ones at the deadline, and waits for them. */
  stop(timeoutMs: number): Promise<void>;
}

/** Every job a process may enqueue, API-only processes included. */
const JOBS: ReadonlyArray<JobDefinition<unknown>> = [
  BUILD_RUN,
  DEPLOYMENT_RECONCILE,
  SECRET_ROTATE,
  IDENTITY_SIGN_UP_MAIL,
  IDENTITY_PURGE,
];

/** Starts the queue and defines every job's queue, so sends inside transactions never wait. */
export async function prepareQueue(deps: Pick<Dependencies, 'queue'>): Promise<void> {
  await deps.queue.start();
  for (const job of JOBS) await deps.queue.define(job);
}

/**
 * Starts the queue, the job handlers and the router, and brings live deployments back.
 * Every handler receives the one shutdown signal.
 */
export async function startWorkers(deps: Dependencies): Promise<Workers> {
  const shutdown = new AbortController();
  const { queue, metrics, domain } = deps;
  try {
    await prepareQueue(deps);
  } catch (error) {
    // Nothing else has started yet; the queue's own timers must not keep the process alive.
    await queue.stop(1_000).catch(() => undefined);
    throw error;
  }

  const timed: Timed = async (job, work, subject) => {
    const end = metrics.jobDuration.startTimer({ job });
    // Events a job records (secrets delivered to workloads, rotations) reach the audit trail,
    // naming the person who asked for the work.
    const actor = subject === undefined ? undefined : await deps.audit.jobActor(subject);
    const scope = openAuditScope(
      deps.audit.recorder,
      { requestId: null, clientIp: null, userAgent: `switchyard-worker ${job}` },
      actor,
    );
    try {
      await runInAuditScope(scope, work);
      end({ outcome: 'ok' });
    } catch (error) {
      end({ outcome: 'error' });
      throw error;
    }
  };

  // Build processes of a Switchyard process killed on this machine outlive it; end them before
  // their builds are retried here or elsewhere.
  await reapOrphanedBuilds(deps.logger);
  // pg-boss runs one handler at a time per subscription; one subscription per build slot.
  for (let slot = 0; slot < deps.config.builds.concurrency; slot++) {
    await queue.work(BUILD_RUN, (data) =>
      timed(BUILD_RUN.name, () => domain.builds.run(data, shutdown.signal), {
        kind: 'build',
        id: data.buildId,
      }),
    );
  }
  // Sign-up mail, and the scheduled purge of expired sessions, tokens and counters.
  await startIdentityWork(deps, shutdown.signal, timed);

  const { database, logger, config, worker } = deps;
  const heartbeat = startHeartbeat(
    database.db,
    { id: worker.id, hostname: hostname(), pid: process.pid, role: config.process.role },
    config.process.heartbeatIntervalMs,
    logger,
  );
  const leaderDuties = createLeaderDuties(deps, shutdown.signal, timed);

  const election = startElection({
    db: database.db,
    name: RECONCILER_LEASE,
    holder: worker.id,
    ttlMs: worker.staleMs,
    logger,
    onElected: (term) => leaderDuties.start(term),
    onDeposed: () => leaderDuties.stop(),
    // Readiness tells why this process cannot lead (a router port taken by another program).
    onStartFailed: (error) => {
      worker.leaderFailure =
        error === undefined
          ? undefined
          : `elected leader but could not start: ${error instanceof Error ? error.message : String(error)}`;
    },
  });

  // Serve only once this process knows whether it leads, and a leader has its apps back.
  await election.settled;
  // Signed checkpoints of the audit chain, and deliveries to compliance sinks.
  const auditWork = deps.audit.runBackground(shutdown.signal);

  return {
    async stop(timeoutMs) {
      const cancel = setTimeout(() => shutdown.abort(), Math.max(0, timeoutMs - 1_000));
      try {
        // Jobs first (they may use the workloads), then the router drains the requests it
        // proxies, then the leader's workloads stop.
        await queue.stop(timeoutMs);
        await deps.router?.close();
        await election.stop();
        await heartbeat.stop();
      } finally {
        clearTimeout(cancel);
        shutdown.abort();
        leaderDuties.close();
        await auditWork;
      }
    },
  };
}
