import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import { every, type Loop } from '../platform/leadership.js';
import { isAppError } from '../platform/errors.js';
import * as deployments from '../deployments/deployment.repository.js';
import type { Reconciler } from '../deployments/reconciler.js';
import type { RuntimeDriver } from '../runtime/runtime.js';
import { openValue, type MasterKeyRing } from './secret-crypto.js';
import type { SecretDelivery } from './secret-delivery.js';
import * as repo from './secret.repository.js';
import * as rotations from './rotation.repository.js';
import type { SecretService } from './secret.service.js';
import { scopeOf, type RotationRow, type RotationTargetRow } from './secret.tables.js';

/** The steps of a rotation, in order; tests inject failures (or a SIGKILL) before each. */
export type RotationStep = 'write' | 'roll' | 'verify' | 'complete';

export interface RotationHooks {
  beforeStep?(step: RotationStep, rotation: RotationRow): Promise<void> | void;
  /** The machine name the runner records; tests use it to stand for another machine. */
  runnerHost?: string;
}

/** A step found the new version unfit; the message is the rotation's recorded reason. */
class RotationStepError extends Error {}

/** Another process took the rotation over; this one must stop touching it. */
class LostClaimError extends Error {}

export function stagedContext(rotationId: string): string {
  return `rotation:${rotationId}`;
}

/**
 * Works rotations: `run` drives one forward (write → roll → verify → complete) or, after
 * any failure, back (previous version current again, deployments restored). Progress is on
 * the rotation row, owned by one runner at a time (`host:pid:boot`), which renews a
 * heartbeat on it every `heartbeatMs` while it works. A runner whose process is gone — same
 * host, pid dead or reused — or whose heartbeat is older than `leaseMs` (a process on another
 * machine that died or lost the database) is taken over, and what it left part-way is rolled
 * back. A runner that finds its claim taken stops at once.
 */
export function createRotationRunner(deps: {
  db: Db;
  logger: Logger;
  secrets: SecretService;
  delivery: SecretDelivery;
  keys: MasterKeyRing;
  reconciler: Reconciler;
  runtime: RuntimeDriver;
  heartbeatMs: number;
  leaseMs: number;
  hooks?: RotationHooks;
}) {
  const db = repo.lockboxDb(deps.db);
  const myHost = deps.hooks?.runnerHost ?? hostname();
  const me = `${myHost}:${process.pid}:${randomUUID()}`;
  const running = new Set<string>();

  function isGone(runner: string | null, heartbeatAt: Date | null): boolean {
    if (runner === null) return true;
    const [host, pid, boot] = runner.split(':');
    if (heartbeatAt !== null && Date.now() - heartbeatAt.getTime() > deps.leaseMs) return true;
    if (host !== myHost) return false;
    if (Number(pid) === process.pid) return boot !== me.split(':')[2];
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  async function advance(
    rotation: RotationRow,
    changes: Parameters<typeof rotations.advanceRotation>[3],
  ): Promise<RotationRow> {
    const next = await rotations.advanceRotation(db, rotation.id, me, changes);
    if (next === undefined) throw new LostClaimError('rotation taken over by another runner');
    return next;
  }

  async function step(name: RotationStep, rotation: RotationRow): Promise<void> {
    await deps.hooks?.beforeStep?.(name, rotation);
  }

  async function write(rotation: RotationRow): Promise<RotationRow> {
    const secret = await repo.getSecretById(db, rotation.secret_id);
    if (secret === undefined) throw new RotationStepError('the secret was deleted');
    const value =
      rotation.staged_key_id !== null &&
      rotation.staged_wrapped_key !== null &&
      rotation.staged_ciphertext !== null
        ? openValue(
            deps.keys,
            {
              keyId: rotation.staged_key_id,
              wrappedKey: rotation.staged_wrapped_key,
              ciphertext: rotation.staged_ciphertext,
            },
            stagedContext(rotation.id),
          )
        : Buffer.from(randomBytes(rotation.generate_bytes ?? 32).toString('base64url'), 'utf8');
    const written = await deps.secrets.writeVersion({
      scope: scopeOf(secret),
      name: secret.name,
      value,
      createdBy: rotation.requested_by,
      state: 'pending',
      within: (trx, version) =>
        rotations
          .advanceRotation(trx, rotation.id, me, {
            state: 'written',
            newVersion: version,
            clearStaged: true,
          })
          .then((row) => {
            if (row === undefined)
              throw new LostClaimError('rotation taken over by another runner');
          }),
    });
    value.fill(0);
    return {
      ...rotation,
      state: 'written',
      new_version: written.version,
      staged_key_id: null,
      staged_wrapped_key: null,
      staged_ciphertext: null,
    };
  }

  /** Starts, for each deployment that uses the secret, a new one with the new version. */
  async function roll(rotation: RotationRow, signal: AbortSignal): Promise<RotationRow> {
    const current = await advance(rotation, { state: 'rolling' });
    const live = await rotations.listLiveDeploymentsUsing(db, rotation.secret_id);
    await inTransaction(deps.db, (trx) =>
      rotations.insertTargets(
        repo.lockboxTrx(trx),
        live.map((row) => ({
          rotation_id: rotation.id,
          service_id: row.service_id,
          environment_id: row.environment_id,
          previous_deployment_id: row.id,
          new_deployment_id: null,
          restore_deployment_id: null,
        })),
      ),
    );
    for (const target of await rotations.listTargets(db, rotation.id)) {
      const pins = {
        ...(await pinsOf(target.previous_deployment_id)),
        [rotation.secret_id]: current.new_version ?? 0,
      };
      const deploymentId = await startDeployment(
        rotation,
        target,
        'new_deployment_id',
        pins,
        signal,
      );
      const result = await deployments.findDeploymentPlan(deps.db, deploymentId);
      if (result?.deployment.status !== 'live') {
        throw new RotationStepError(
          `deployment ${deploymentId} did not become healthy with the new version (${result?.deployment.failure_reason ?? result?.deployment.status ?? 'missing'})`,
        );
      }
      await advance(current, {});
    }
    return current;
  }

  async function pinsOf(deploymentId: string): Promise<Record<string, number>> {
    return (await repo.findDeploymentPins(db, deploymentId)) ?? {};
  }

  /** A new deployment of the previous one's release with `pins`, reconciled now. */
  async function startDeployment(
    rotation: RotationRow,
    target: RotationTargetRow,
    field: 'new_deployment_id' | 'restore_deployment_id',
    pins: Record<string, number>,
    signal: AbortSignal,
  ): Promise<string> {
    const previous = await deployments.findDeploymentPlan(deps.db, target.previous_deployment_id);
    if (previous === undefined)
      throw new RotationStepError('the deployment to roll no longer exists');
    const createdBy = rotation.requested_by ?? previous.deployment.created_by;
    if (createdBy === null)
      throw new RotationStepError('no user remains to attribute the new deployment to');
    const created = await inTransaction(deps.db, async (trx) => {
      const row = await deployments.insertDeployment(trx, {
        serviceId: target.service_id,
        environmentId: target.environment_id,
        releaseId: previous.release.id,
        kind: field === 'new_deployment_id' ? 'restart' : 'rollback',
        replicas: previous.deployment.replicas,
        createdBy,
      });
      const ltrx = repo.lockboxTrx(trx);
      await repo.ensureDeploymentPins(ltrx, row.id, pins);
      await rotations.setTargetDeployment(ltrx, target, field, row.id);
      return row;
    });
    deps.logger.info(
      {
        rotationId: rotation.id,
        deploymentId: created.id,
        previousDeploymentId: previous.deployment.id,
        purpose: field,
      },
      'rotation deployment started',
    );
    await deps.reconciler.reconcile(created.id, signal);
    return created.id;
  }

  async function verify(rotation: RotationRow, signal: AbortSignal): Promise<RotationRow> {
    const current = await advance(rotation, { state: 'verifying' });
    for (const target of await rotations.listTargets(db, rotation.id)) {
      if (target.new_deployment_id === null) continue;
      const health = await deps.runtime.checkHealth(target.new_deployment_id, { signal });
      if (!health.isHealthy) {
        throw new RotationStepError(
          `deployment ${target.new_deployment_id} failed its health check after the switch`,
        );
      }
    }
    return current;
  }

  async function complete(rotation: RotationRow): Promise<void> {
    await inTransaction(deps.db, async (trx) => {
      const ltrx = repo.lockboxTrx(trx);
      if (rotation.new_version !== null) {
        await repo.setVersionState(ltrx, rotation.secret_id, [rotation.new_version], 'active');
        await repo.supersedeOthers(ltrx, rotation.secret_id, rotation.new_version);
      }
      const done = await rotations.advanceRotation(ltrx, rotation.id, me, {
        state: 'succeeded',
        finished: true,
      });
      if (done === undefined) throw new LostClaimError('rotation taken over by another runner');
    });
  }

  /**
   * Undoes whatever the rotation did: the previous version becomes current again, versions
   * it wrote become rolled_back, and each deployment it switched is replaced by one running
   * the previous versions. Throws (for the job to retry) when a deployment cannot be restored.
   */
  async function rollBack(
    rotation: RotationRow,
    reason: string,
    signal: AbortSignal,
  ): Promise<void> {
    let current = await advance(rotation, {
      state: 'rolling_back',
      ...(rotation.failure_reason === null ? { failureReason: reason } : {}),
    });
    await inTransaction(deps.db, async (trx) => {
      const ltrx = repo.lockboxTrx(trx);
      const secret = await repo.lockSecret(ltrx, rotation.secret_id);
      if (secret === undefined || current.previous_version === null) return;
      const pending = (await repo.listVersions(ltrx, secret.id))
        .filter((row) => row.state === 'pending')
        .map((row) => row.version);
      await repo.setVersionState(ltrx, secret.id, pending, 'rolled_back');
      await repo.setVersionState(ltrx, secret.id, [current.previous_version], 'active');
      await repo.setVersionPointers(ltrx, secret.id, { current: current.previous_version });
    });
    for (const target of await rotations.listTargets(db, rotation.id))
      await restoreTarget(current, target, signal);
    current = await advance(current, { state: 'rolled_back', finished: true });
    const secret = await repo.getSecretById(db, rotation.secret_id);
    if (secret !== undefined)
      deps.secrets.record(undefined, 'rotation.rolled_back', secret, {
        rotationId: rotation.id,
        reason: current.failure_reason ?? reason,
      });
    deps.logger.warn(
      {
        rotationId: rotation.id,
        secretId: rotation.secret_id,
        reason: current.failure_reason ?? reason,
      },
      'secret rotation rolled back',
    );
  }

  async function restoreTarget(
    rotation: RotationRow,
    target: RotationTargetRow,
    signal: AbortSignal,
  ): Promise<void> {
    if (target.new_deployment_id === null) return;
    const switched = await deployments.findDeploymentPlan(deps.db, target.new_deployment_id);
    const status = switched?.deployment.status;
    if (status === 'pending' || status === 'in_progress') {
      await deployments.markFailed(
        deps.db,
        target.new_deployment_id,
        'cancelled: the secret rotation rolled back',
      );
      await deps.reconciler.stopDeployments([target.new_deployment_id]);
      return;
    }
    if (status !== 'live') return;
    // A restore that failed on an earlier attempt is replaced by a fresh one.
    const earlier =
      target.restore_deployment_id === null
        ? undefined
        : await deployments.findDeploymentPlan(deps.db, target.restore_deployment_id);
    const isReusable =
      earlier !== undefined && !['failed', 'cancelled'].includes(earlier.deployment.status);
    const restoreId = isReusable
      ? earlier.deployment.id
      : await startDeployment(
          rotation,
          target,
          'restore_deployment_id',
          await pinsOf(target.previous_deployment_id),
          signal,
        );
    const restored = await deployments.findDeploymentPlan(deps.db, restoreId);
    if (
      restored?.deployment.status === 'in_progress' ||
      restored?.deployment.status === 'pending'
    ) {
      await deps.reconciler.reconcile(restoreId, signal);
    }
    const after = await deployments.findDeploymentPlan(deps.db, restoreId);
    if (after?.deployment.status !== 'live' && after?.deployment.status !== 'superseded') {
      throw new Error(`restoring deployment ${restoreId} with the previous version failed`);
    }
  }

  async function forward(rotation: RotationRow, signal: AbortSignal): Promise<void> {
    let current = rotation;
    try {
      await step('write', current);
      current = await write(current);
      await step('roll', current);
      current = await roll(current, signal);
      await step('verify', current);
      current = await verify(current, signal);
      await step('complete', current);
      await complete(current);
    } catch (error) {
      if (error instanceof LostClaimError) throw error;
      const reason = reasonOf(error);
      deps.logger.warn(
        { rotationId: rotation.id, state: current.state, reason },
        'secret rotation failed; rolling back',
      );
      const latest = await rotations.findRotation(db, rotation.id);
      await rollBack(latest ?? current, reason, signal);
      return;
    }
    const secret = await repo.getSecretById(db, rotation.secret_id);
    if (secret !== undefined)
      deps.secrets.record(undefined, 'rotation.succeeded', secret, {
        rotationId: rotation.id,
        version: current.new_version ?? 0,
      });
    deps.logger.info(
      { rotationId: rotation.id, secretId: rotation.secret_id, version: current.new_version },
      'secret rotation succeeded',
    );
  }

  /**
   * Renews the claim every heartbeatMs while the rotation is worked; aborts the work when
   * another runner has taken it (this one was presumed dead, e.g. cut off from the database).
   */
  function keepClaim(rotationId: string, lost: AbortController): Loop {
    return every(deps.heartbeatMs, deps.logger, 'rotation heartbeat', async () => {
      if (!(await rotations.beatRotation(db, rotationId, me))) lost.abort();
    });
  }

  /** Claims a rotation `isTakeable` judged free and drives it to an end state. */
  async function settle(
    rotationId: string,
    signal: AbortSignal,
    isTakeable: (seen: RotationRow) => boolean,
    expiredForMs?: number,
  ): Promise<void> {
    if (running.has(rotationId)) return;
    running.add(rotationId);
    const lost = new AbortController();
    let heartbeat: Loop | undefined;
    try {
      const seen = await rotations.findRotation(db, rotationId);
      if (seen === undefined || seen.state === 'succeeded' || seen.state === 'rolled_back') return;
      if (!isTakeable(seen)) return;
      const claimed = await rotations.claimRotation(db, rotationId, me, seen.runner, expiredForMs);
      if (claimed === undefined) return;
      heartbeat = keepClaim(rotationId, lost);
      const working = AbortSignal.any([signal, lost.signal]);
      if (claimed.state === 'requested' && seen.runner === null) await forward(claimed, working);
      else {
        deps.logger.warn(
          { rotationId, state: claimed.state, previousRunner: seen.runner },
          'secret rotation taken over from a stopped runner; rolling back',
        );
        await rollBack(
          claimed,
          `interrupted while ${claimed.state}: the process running it stopped`,
          working,
        );
      }
    } catch (error) {
      if (error instanceof LostClaimError || lost.signal.aborted) return;
      throw error;
    } finally {
      await heartbeat?.stop();
      running.delete(rotationId);
    }
  }

  /** Settles every rotation whose runner stopped renewing its heartbeat, one at a time. */
  async function takeOverAbandoned(signal: AbortSignal): Promise<void> {
    for (const id of await rotations.listAbandonedRotationIds(db, deps.leaseMs)) {
      if (signal.aborted) return;
      await settle(id, signal, () => true, deps.leaseMs);
    }
  }

  return {
    /**
     * Works one rotation to an end state. Does nothing when it is finished or a live runner
     * holds it. A requested rotation goes forward; one left part-way by a runner that is
     * gone is rolled back.
     */
    async run(rotationId: string, signal: AbortSignal): Promise<void> {
      await settle(rotationId, signal, (seen) => {
        const heartbeat = seen.heartbeat_at === null ? null : new Date(seen.heartbeat_at);
        return seen.runner === me || isGone(seen.runner, heartbeat);
      });
    },

    /**
     * When this process starts leading: finishes every rotation a stopped process left, one at
     * a time, then keeps watching, until `signal` aborts, for rotations whose runner stopped
     * heartbeating (a process on another machine that died), and rolls them back.
     */
    async recover(signal: AbortSignal): Promise<void> {
      for (const id of await rotations.listUnfinishedRotationIds(db)) {
        if (signal.aborted) return;
        try {
          await this.run(id, signal);
        } catch (error) {
          deps.logger.error(
            { err: error, rotationId: id },
            'unfinished secret rotation could not be settled; its job will retry',
          );
        }
      }
      if (signal.aborted) return;
      const watch = every(deps.heartbeatMs, deps.logger, 'abandoned rotation watch', () =>
        takeOverAbandoned(signal),
      );
      signal.addEventListener('abort', () => void watch.stop(), { once: true });
    },
  };
}

function reasonOf(error: unknown): string {
  if (isAppError(error)) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

export type RotationRunner = ReturnType<typeof createRotationRunner>;
