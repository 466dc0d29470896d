import type { Dependencies } from './dependencies.js';
import { BUILD_RUN } from '../builds/build.jobs.js';
import { DEPLOYMENT_RECONCILE } from '../deployments/deployment.jobs.js';
import { SECRET_ROTATE } from '../secrets/rotation.jobs.js';

export interface Workers {
  /** Stops taking jobs, cancels running ones at the deadline, and waits for them. */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Starts the queue, the job handlers and the router, and brings live deployments back.
 * Every handler receives the one shutdown signal.
 */
export async function startWorkers(deps: Dependencies): Promise<Workers> {
  const shutdown = new AbortController();
  const { queue, metrics, domain } = deps;
  await queue.start();
  await queue.define(BUILD_RUN);
  await queue.define(DEPLOYMENT_RECONCILE);

  const timed = async (job: string, work: () => Promise<void>) => {
    const end = metrics.jobDuration.startTimer({ job });
    try {
      await work();
      end({ outcome: 'ok' });
    } catch (error) {
      end({ outcome: 'error' });
      throw error;
    }
  };

  // pg-boss runs one handler at a time per subscription; one subscription per build slot.
  for (let slot = 0; slot < deps.config.builds.concurrency; slot++) {
    await queue.work(BUILD_RUN, (data) => timed(BUILD_RUN.name, () => domain.builds.run(data, shutdown.signal)));
  }

  const { reconciler, runtime, router } = deps;
  if (reconciler !== undefined && runtime !== undefined && router !== undefined) {
    await runtime.init();
    await router.listen();
    await queue.work(DEPLOYMENT_RECONCILE, (data) =>
      timed(DEPLOYMENT_RECONCILE.name, () => reconciler.reconcile(data.deploymentId, shutdown.signal)),
    );
    await reconciler.restoreLive(shutdown.signal);
    const rotations = deps.lockbox.runner;
    if (rotations !== undefined) {
      // After restoreLive: a rotation a crash left part-way is settled against running workloads.
      await rotations.recover(shutdown.signal);
      await queue.define(SECRET_ROTATE);
      await queue.work(SECRET_ROTATE, (data) =>
        timed(SECRET_ROTATE.name, () => rotations.run(data.rotationId, shutdown.signal)),
      );
    }
  }

  return {
    async stop(timeoutMs) {
      const cancel = setTimeout(() => shutdown.abort(), Math.max(0, timeoutMs - 1_000));
      try {
        await queue.stop(timeoutMs);
      } finally {
        clearTimeout(cancel);
        shutdown.abort();
      }
    },
  };
}
