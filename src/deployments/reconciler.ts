import type { Logger } from 'pino';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import type { Metrics } from '../platform/metrics.js';
import type { Router } from '../router/router.js';
import type { RunAs } from '../platform/workload-users.js';
import { WorkloadStartError, type RuntimeDriver, type WorkloadSpec } from '../runtime/runtime.js';
import * as repo from './deployment.repository.js';
import type { DeploymentPlan } from './deployment.repository.js';

export interface ReconcilerOptions {
  db: Db;
  runtime: RuntimeDriver;
  router: Router;
  logger: Logger;
  metrics: Metrics;
  baseDomain: string;
  healthTimeoutMs: number;
  drainMs: number;
  worker: { id: string; staleMs: number };
  /** Lockbox: the secret variables (and the values to redact) of a deployment's workload. */
  workloadSecrets?: (
    deployment: DeploymentPlan['deployment'],
  ) => Promise<{ env: Record<string, string>; values: string[] }>;
  /** The user a project's instances run as, by its workload slot; undefined runs them as us. */
  workloadUser?: (slot: number) => RunAs | undefined;
}

/** The hostname a deployment answers on: `{service}.{environment}.{project}.{domain}`. */
export function hostnameFor(labels: DeploymentPlan['labels'], baseDomain: string): string {
  return `${labels.service}.${labels.environment}.${labels.project}.${baseDomain}`;
}

/**
 * The workload of a deployment. Its variables are the release's configuration snapshot
 * overlaid with the deployment's secrets (which already apply project < environment <
 * service among themselves), so a secret wins over a configuration variable of its name.
 */
export function workloadSpecOf(
  plan: DeploymentPlan,
  secrets?: { env: Record<string, string>; values: string[] },
  runAs?: RunAs,
): WorkloadSpec {
  const override = plan.runtime.startCommand;
  return {
    deploymentId: plan.deployment.id,
    releaseId: plan.release.id,
    labels: plan.labels,
    artifactPath: plan.release.artifact_path,
    start:
      override === undefined
        ? plan.release.start_command
        : { command: '/bin/sh', args: ['-c', override] },
    env: { ...plan.release.config_snapshot, ...secrets?.env },
    instances: plan.deployment.replicas,
    healthCheckPath: plan.runtime.healthCheckPath,
    ...(secrets === undefined ? {} : { redact: secrets.values }),
    ...(runAs === undefined ? {} : { runAs }),
  };
}

/**
 * Moves running workloads toward what the database declares: the live deployment of each
 * service and environment runs, healthy, behind the router; nothing else does.
 */
export function createReconciler(options: ReconcilerOptions) {
  const { db, runtime, router, logger, metrics } = options;
  // Deployments currently receiving traffic, by id → hostname.
  const routed = new Map<string, string>();

  const unsubscribe = runtime.onEvent((event) => {
    if (event.type === 'restarting') metrics.workloadRestarts.inc();
    const host = routed.get(event.deploymentId);
    if (host !== undefined) router.setRoute(host, runtime.endpoints(event.deploymentId));
    if (event.type === 'gave_up') {
      logger.error(
        { deploymentId: event.deploymentId, instanceId: event.instanceId },
        'instance keeps crashing; restarts stopped',
      );
      void repo
        .setFailureNote(
          db,
          event.deploymentId,
          'an instance kept crashing and was not restarted again',
        )
        .catch(() => undefined);
    }
  });

  function route(plan: DeploymentPlan): void {
    const host = hostnameFor(plan.labels, options.baseDomain);
    for (const [id, existing] of routed)
      if (existing === host && id !== plan.deployment.id) routed.delete(id);
    routed.set(plan.deployment.id, host);
    router.setRoute(host, runtime.endpoints(plan.deployment.id));
  }

  async function specOf(plan: DeploymentPlan): Promise<WorkloadSpec> {
    const secrets = await options.workloadSecrets?.(plan.deployment);
    return workloadSpecOf(plan, secrets, options.workloadUser?.(plan.workloadSlot));
  }

  async function stop(deploymentIds: string[]): Promise<void> {
    for (const id of deploymentIds) routed.delete(id);
    await Promise.all(deploymentIds.map((id) => runtime.stop(id, { drainMs: options.drainMs })));
  }

  return {
    /** The deployment.reconcile job. Failures leave the previous release live. */
    async reconcile(deploymentId: string, signal: AbortSignal): Promise<void> {
      const claimed = await repo.claimDeployment(
        db,
        deploymentId,
        options.worker.id,
        options.worker.staleMs,
      );
      if (claimed === undefined) return;
      const plan = await repo.findDeploymentPlan(db, deploymentId);
      if (plan === undefined) return;
      const log = logger.child({ deploymentId, releaseId: plan.release.id });
      const started = performance.now();
      try {
        await runtime.start(await specOf(plan), { signal, deadlineMs: options.healthTimeoutMs });
      } catch (error) {
        if (!(error instanceof WorkloadStartError)) throw error;
        await repo.markFailed(db, deploymentId, `${error.reason}: ${error.message}`);
        metrics.reconcileDuration.labels('failed').observe((performance.now() - started) / 1000);
        log.warn({ reason: error.reason }, 'deployment failed; previous release stays live');
        return;
      }
      const superseded = await inTransaction(db, (trx) => repo.promoteToLive(trx, plan.deployment));
      if (superseded === undefined) {
        await stop([deploymentId]);
        log.info('a newer deployment went live first; this one was superseded');
        return;
      }
      route(plan);
      await stop(superseded);
      metrics.reconcileDuration.labels('live').observe((performance.now() - started) / 1000);
      log.info(
        { superseded: superseded.length, durationMs: Math.round(performance.now() - started) },
        'deployment live',
      );
    },

    /** At start: bring back every deployment the database says is live. */
    async restoreLive(signal: AbortSignal): Promise<void> {
      const plans = await repo.listLivePlans(db);
      for (const plan of plans) {
        if (signal.aborted) return;
        try {
          await runtime.start(await specOf(plan), { signal, deadlineMs: options.healthTimeoutMs });
          await repo.setFailureNote(db, plan.deployment.id, null);
        } catch (error) {
          const reason = error instanceof WorkloadStartError ? error.reason : 'error';
          logger.error(
            { err: error, deploymentId: plan.deployment.id, reason },
            'live deployment did not come back',
          );
          await repo.setFailureNote(
            db,
            plan.deployment.id,
            `restore after restart failed: ${reason}`,
          );
        }
        route(plan);
      }
      logger.info({ deployments: plans.length }, 'live deployments restored');
    },

    /** Stops the instances of the given deployments and forgets their routes. */
    async stopDeployments(deploymentIds: string[], plans?: DeploymentPlan[]): Promise<void> {
      for (const plan of plans ?? [])
        router.removeRoute(hostnameFor(plan.labels, options.baseDomain));
      await stop(deploymentIds);
    },

    hostnameFor: (labels: DeploymentPlan['labels']) => hostnameFor(labels, options.baseDomain),

    close(): void {
      unsubscribe();
      routed.clear();
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
