import { AppError } from '../platform/errors.js';
import type { JobDefinition } from '../platform/queue.js';

export interface SecretRotatePayload {
  rotationId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * secret.rotate: write the new version, roll the deployments that use the secret, verify
 * them, settle — or undo all of it. Every step is recorded on the rotation, so a retry (or
 * the start-up recovery after a crash) finds where it stopped; a rotation that lost its
 * process part-way is rolled back, never left half-done. Retries cover failures of the
 * undo itself (the database gone mid-way).
 */
export const SECRET_ROTATE: JobDefinition<SecretRotatePayload> = {
  name: 'secret.rotate',
  retryLimit: 5,
  retryDelaySeconds: 5,
  expireInSeconds: 1800,
  parse(data) {
    const rotationId = (data as { rotationId?: unknown } | null)?.rotationId;
    if (typeof rotationId !== 'string' || !UUID.test(rotationId)) {
      throw new AppError('VALIDATION_FAILED', 'secret.rotate payload needs a rotationId');
    }
    return { rotationId };
  },
};
