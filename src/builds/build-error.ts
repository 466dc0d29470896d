/** Why a build failed; the build job records it and the CLI shows it. */
export type BuildFailureReason =
  | 'clone_failed'
  | 'ref_not_found'
  | 'no_buildpack'
  | 'install_failed'
  | 'build_failed'
  | 'timeout'
  | 'cancelled'
  | 'artifact_failed';

/**
 * A build that did not produce an artifact. The message is safe to show to the service's
 * developers: it never carries secret values or credentials (the details are in the build log).
 */
export class BuildFailedError extends Error {
  readonly reason: BuildFailureReason;

  constructor(reason: BuildFailureReason, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'BuildFailedError';
    this.reason = reason;
  }
}

export function isBuildFailedError(error: unknown): error is BuildFailedError {
  return error instanceof BuildFailedError;
}
