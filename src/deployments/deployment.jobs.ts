import { AppError } from '../platform/errors.js';
import type { JobDefinition } from '../platform/queue.js';

export interface DeploymentReconcilePayload {
  deploymentId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * deployment.reconcile: start a deployment's instances, wait for health, switch traffic,
 * drain the previous release. Idempotent: a finished deployment is left alone, and a retry
 * after a crash starts the instances afresh.
 */
export const DEPLOYMENT_RECONCILE: JobDefinition<DeploymentReconcilePayload> = {
  name: 'deployment.reconcile',
  retryLimit: 3,
  retryDelaySeconds: 2,
  expireInSeconds: 900,
  parse(data) {
    const deploymentId = (data as { deploymentId?: unknown } | null)?.deploymentId;
    if (typeof deploymentId !== 'string' || !UUID.test(deploymentId)) {
      throw new AppError('VALIDATION_FAILED', 'deployment.reconcile payload needs a deploymentId');
    }
    return { deploymentId };
  },
};
