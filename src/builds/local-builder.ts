import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  closedParent,
  makeWorkloadFolder,
  removeWorkloadFolder,
  type RunAs,
} from '../platform/workload-users.js';
import {
  encodeManifest,
  manifestSizeBytes,
  publishArtifact,
  readTreeManifest,
} from './artifact.js';
import { BuildFailedError, isBuildFailedError } from './build-error.js';
import { runProcess, SYSTEM_PATH } from './build-process.js';
import {
  detectBuildPlan,
  prepareStart,
  type BuildKind,
  type BuildStep,
  type StartCommand,
} from './buildpacks.js';
import { checkoutRef, credentialSecrets, type GitCredentials } from './git.js';
import { createLineSink, createRedactor, type Redactor } from './log-redaction.js';

export { BuildFailedError } from './build-error.js';
export type { BuildFailureReason } from './build-error.js';
export type { StartCommand } from './buildpacks.js';

/**
 * The `local` builder: turns a git repository at a ref into an immutable, content-addressed
 * artifact folder that the local runtime runs without containers.
 */
export interface BuildInput {
  buildId: string;
  /** Already checked by the git URL guard; may be an absolute local path or a file:// URL. */
  gitUrl: string;
  /** A branch, tag, full ref name, HEAD, or a full or short commit sha. */
  ref: string;
  /** Scratch space; the builder makes its own subfolder and removes it. */
  workRoot: string;
  /** Artifacts live at `${artifactRoot}/<sha256 hex>/`. */
  artifactRoot: string;
  /** The configuration variables the build steps see. */
  buildEnv: Record<string, string>;
  /** Values replaced by [REDACTED] in every log line. */
  secretValues: readonly string[];
  /** For https remotes; never on a command line, never logged. */
  gitCredentials?: GitCredentials;
  /** The user git and the build steps run as (the project's workload user); absent, ours. */
  runAs?: RunAs | undefined;
  /** A local repository inside this folder (Switchyard's data folder) is refused. */
  refusedLocalRoot?: string | undefined;
  timeoutMs: number;
  signal: AbortSignal;
  /** Build output, one redacted line at a time. */
  onLog: (line: string) => void;
  logger: Logger;
}

export interface BuildResult {
  /** The full 40-hex commit sha. */
  commitSha: string;
  /** `sha256:<hex>`, the sha256 of the artifact's manifest. */
  digest: string;
  artifactPath: string;
  kind: BuildKind;
  start: StartCommand;
  sizeBytes: number;
}

interface BuildContext {
  input: BuildInput;
  scratch: string;
  signal: AbortSignal;
  redactor: Redactor;
  /** Writes a line we composed, redacting it. */
  log: (line: string) => void;
  /** Writes a line that is already redacted. */
  emit: (line: string) => void;
}

/**
 * Builds `input.ref` of `input.gitUrl`. Building a commit whose built tree is already stored
 * reuses that artifact. Throws BuildFailedError, whose reason says which stage failed; the
 * scratch folder is removed either way.
 */
export async function runLocalBuild(input: BuildInput): Promise<BuildResult> {
  const startedAt = performance.now();
  const logger = input.logger.child({ buildId: input.buildId });
  const redactor = createRedactor([
    ...input.secretValues,
    ...credentialSecrets(input.gitCredentials),
  ]);
  // A failing log sink must not take the worker down from inside a stream handler.
  const emit = (line: string) => {
    try {
      input.onLog(line);
    } catch (error) {
      logger.warn({ err: error }, 'build log line dropped');
    }
  };
  const log = (line: string) => emit(redactor.redact(line));
  const deadline = startDeadline(input.signal, input.timeoutMs);

  let scratch: string | undefined;
  try {
    deadline.signal.throwIfAborted();
    scratch = await makeScratch(input.workRoot, input.runAs);
    const context = { input, scratch, signal: deadline.signal, redactor, log, emit };
    const result = await build(context);
    const durationMs = Math.round(performance.now() - startedAt);
    logger.info(
      { commitSha: result.commitSha, digest: result.digest, kind: result.kind, durationMs },
      'build succeeded',
    );
    return result;
  } catch (error) {
    const failure = toBuildFailure(error, deadline.signal);
    logger.info(
      {
        reason: failure.reason,
        message: failure.message,
        durationMs: Math.round(performance.now() - startedAt),
      },
      'build failed',
    );
    throw failure;
  } finally {
    deadline.dispose();
    if (scratch !== undefined) {
      await removeScratch(scratch, input.runAs).catch((error: unknown) => {
        logger.warn({ err: error }, 'build scratch folder not removed');
      });
    }
  }
}

async function build(context: BuildContext): Promise<BuildResult> {
  const { input, scratch, signal, log } = context;
  const home = join(scratch, 'home');
  const source = join(scratch, 'source');
  await makeWorkloadFolder(home, input.runAs);
  await makeWorkloadFolder(source, input.runAs);

  log(`-----> Fetching ${input.ref}`);
  const commitSha = await checkoutRef({
    url: input.gitUrl,
    ref: input.ref,
    dir: source,
    home,
    credentials: input.gitCredentials,
    runAs: input.runAs,
    configDir: scratch,
    refusedLocalRoot: input.refusedLocalRoot,
    signal,
    redactor: context.redactor,
    onLog: context.emit,
  });
  log(`-----> Checked out ${commitSha}`);

  const plan = await detectBuildPlan(source);
  log(`-----> Detected a ${plan.kind} app`);
  for (const step of plan.steps) await runStep(context, step, source, home);
  const start = await prepareStart(source, plan.kind);

  log('-----> Storing the artifact');
  const artifact = await storeArtifact(source, input.artifactRoot, signal);
  log(`-----> ${artifact.isReused ? 'Reused' : 'Stored'} artifact ${artifact.digest}`);
  return { commitSha, kind: plan.kind, start, ...artifact };
}

async function runStep(context: BuildContext, step: BuildStep, cwd: string, home: string) {
  const line = [step.command, ...step.args].join(' ');
  context.log(`-----> Running ${line}`);

  const exit = await runProcess({
    command: step.command,
    args: step.args,
    cwd,
    env: stepEnvironment(context.input.buildEnv, home),
    runAs: context.input.runAs,
    signal: context.signal,
    stdout: createLineSink(context.redactor, context.emit),
    stderr: createLineSink(context.redactor, context.emit),
  }).catch((error: unknown) => {
    if (context.signal.aborted) throw error;
    throw new BuildFailedError(step.failure, `${step.command} could not be started`, {
      cause: error,
    });
  });

  if (exit.exitCode !== 0) {
    const status =
      exit.exitCode !== null ? `code ${exit.exitCode}` : `signal ${exit.signalName ?? 'unknown'}`;
    throw new BuildFailedError(step.failure, `${line} failed with ${status}`);
  }
}

/**
 * The environment of a build step: the service's build variables and a minimal PATH and HOME.
 * Switchyard's own environment (database URLs, keys) never reaches a build.
 */
function stepEnvironment(buildEnv: Record<string, string>, home: string): Record<string, string> {
  return {
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    ...buildEnv,
    PATH: SYSTEM_PATH,
    HOME: home,
  };
}

async function storeArtifact(source: string, artifactRoot: string, signal: AbortSignal) {
  try {
    const manifest = await readTreeManifest(source, signal);
    signal.throwIfAborted();
    const published = await publishArtifact(source, artifactRoot, manifest);
    return {
      digest: `sha256:${encodeManifest(manifest).hex}`,
      artifactPath: published.path,
      sizeBytes: manifestSizeBytes(manifest),
      isReused: published.isReused,
    };
  } catch (error) {
    if (signal.aborted) throw error;
    throw new BuildFailedError('artifact_failed', 'the artifact could not be stored', {
      cause: error,
    });
  }
}

/**
 * A fresh scratch folder of Switchyard's. With a workload user, the work root and the scratch
 * folder can be traversed but not listed (0711), so the build reaches its own HOME and
 * source folders (the user's, 0700) and no other build's; the git configuration beside them
 * stays Switchyard's.
 */
async function makeScratch(workRoot: string, runAs: RunAs | undefined): Promise<string> {
  await mkdir(workRoot, { recursive: true, mode: 0o700 });
  const scratch = await mkdtemp(join(workRoot, 'build-'));
  if (runAs === undefined) return scratch;

  await chmod(workRoot, 0o711);
  await chmod(scratch, 0o711);
  if ((await closedParent(workRoot)) !== undefined) {
    await rm(scratch, { recursive: true, force: true });
    throw new BuildFailedError(
      'build_failed',
      "the build's user cannot reach Switchyard's data folder: a folder above it is closed to other users (the server log names it)",
    );
  }
  return scratch;
}

/** The build user's folders go as that user; only then is the rest (Switchyard's) removed. */
async function removeScratch(scratch: string, runAs: RunAs | undefined): Promise<void> {
  for (const folder of ['home', 'source']) {
    await removeWorkloadFolder(join(scratch, folder), runAs);
  }
  await rm(scratch, { recursive: true, force: true });
}

// setTimeout fires at once for delays past 2^31 - 1 ms.
const MAX_TIMER_MS = 2_147_483_647;

/** One signal for the caller's cancellation and the build's own timeout. */
function startDeadline(cancel: AbortSignal, timeoutMs: number) {
  const controller = new AbortController();
  const onCancel = () =>
    controller.abort(new BuildFailedError('cancelled', 'the build was cancelled'));
  const timer = setTimeout(
    () => {
      controller.abort(
        new BuildFailedError('timeout', `the build took longer than ${timeoutMs} ms`),
      );
    },
    Math.min(timeoutMs, MAX_TIMER_MS),
  );

  if (cancel.aborted) onCancel();
  else cancel.addEventListener('abort', onCancel, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      cancel.removeEventListener('abort', onCancel);
    },
  };
}

function toBuildFailure(error: unknown, signal: AbortSignal): BuildFailedError {
  // After an abort, whatever failed did so because its processes were killed.
  if (signal.aborted && isBuildFailedError(signal.reason)) return signal.reason;
  if (isBuildFailedError(error)) return error;
  return new BuildFailedError('build_failed', 'the build failed unexpectedly', { cause: error });
}
