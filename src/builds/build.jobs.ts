import { AppError } from '../platform/errors.js';
import type { JobDefinition } from '../platform/queue.js';

export interface BuildRunPayload {
  buildId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * build.run: one build, start to release. Retried (with backoff) only for infrastructure
 * failures such as a lost database; a failing build script is a result, not an error.
 * A worker that dies mid-build leaves the job active until it expires, then it runs again.
 */
export const BUILD_RUN: JobDefinition<BuildRunPayload> = {
  name: 'build.run',
  retryLimit: 3,
  retryDelaySeconds: 5,
  expireInSeconds: 3600,
  parse(data) {
    const buildId = (data as { buildId?: unknown } | null)?.buildId;
    if (typeof buildId !== 'string' || !UUID.test(buildId)) {
      throw new AppError('VALIDATION_FAILED', 'build.run payload needs a buildId');
    }
    return { buildId };
  },
};
