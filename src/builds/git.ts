import { BuildFailedError, type BuildFailureReason } from './build-error.js';
import { runProcess, SYSTEM_PATH } from './build-process.js';
import { createLineSink, NO_REDACTION, type Redactor } from './log-redaction.js';

export interface GitCredentials {
  username: string;
  password: string;
}

export interface CheckoutOptions {
  url: string;
  ref: string;
  /** An empty folder that becomes the work tree. */
  dir: string;
  /** An empty folder used as HOME, so no user configuration or stored credentials apply. */
  home: string;
  credentials?: GitCredentials | undefined;
  signal: AbortSignal;
  redactor: Redactor;
  onLog: (line: string) => void;
}

// Options on every git command: no ext:: transport, no credential helpers, no hooks.
// prettier-ignore
const GIT_CONFIG_ARGS = [
  '-c', 'protocol.ext.allow=never',
  '-c', 'credential.helper=',
  '-c', 'core.hooksPath=/dev/null',
  '-c', 'advice.detachedHead=false',
  '-c', 'init.defaultBranch=main',
];

const HEX_SHA = /^[0-9a-f]{4,40}$/i;
const REF_CHARS = /^[A-Za-z0-9._/+@-]+$/;

/**
 * Refuses a ref that git could read as an option or a refspec (`-x`, `+a:b`), and anything
 * outside git's own ref-name rules. Throws BuildFailedError('ref_not_found').
 */
export function assertSafeRef(ref: string): void {
  if (ref.startsWith('-')) {
    throw new BuildFailedError('ref_not_found', 'the ref must not start with "-"');
  }

  const isMalformed =
    ref.length === 0 ||
    ref.length > 255 ||
    !REF_CHARS.test(ref) ||
    /^[+/.]|[/.]$|\.\.|\/\/|@\{|\/\.|\.lock$/.test(ref) ||
    ref === '@';
  if (isMalformed) {
    throw new BuildFailedError('ref_not_found', 'the ref is not a valid git ref name');
  }
}

/**
 * The whole environment of a git process. Credentials travel as an HTTP header in
 * environment-only configuration, scoped to the repository's origin, so they never appear in
 * argv, in a stored remote URL or in output.
 */
export function gitEnvironment(
  home: string,
  url: string,
  credentials?: GitCredentials,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: SYSTEM_PATH,
    HOME: home,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes',
  };
  const origin = httpOrigin(url);
  if (credentials === undefined || origin === undefined) return env;

  return {
    ...env,
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basicToken(credentials)}`,
  };
}

/** The strings credentials could show up as, for the redactor. */
export function credentialSecrets(credentials: GitCredentials | undefined): string[] {
  if (credentials === undefined) return [];
  return [credentials.password, basicToken(credentials)];
}

function basicToken(credentials: GitCredentials): string {
  return Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
}

/**
 * Fetches `ref` from `url` into `dir` (shallow unless a short sha needs the history), checks it
 * out and returns the full commit sha. Throws BuildFailedError 'ref_not_found' or 'clone_failed'.
 */
export async function checkoutRef(options: CheckoutOptions): Promise<string> {
  assertSafeRef(options.ref);
  const git = gitRunner(options);

  await expectGit(git, ['init', '--quiet'], 'clone_failed', 'could not prepare the clone');
  const remoteRefs = await expectGit(
    git,
    ['ls-remote', '--end-of-options', options.url],
    'clone_failed',
    'could not read the repository (check the URL and credentials)',
  );

  const refName = matchRef(parseLsRemote(remoteRefs), options.ref);
  const sha =
    refName !== undefined
      ? await fetchNamedRef(git, options.url, refName)
      : await fetchCommit(git, options);

  const checkout = ['checkout', '--quiet', '--force', '--detach', sha, '--'];
  await expectGit(git, checkout, 'clone_failed', 'could not check out the commit');
  return sha;
}

interface GitOutcome {
  isSuccess: boolean;
  stdout: string[];
}

/** Runs git in the clone folder; stderr goes to the build log, stdout comes back as lines. */
type GitRun = (args: string[]) => Promise<GitOutcome>;

function gitRunner(options: CheckoutOptions): GitRun {
  const env = gitEnvironment(options.home, options.url, options.credentials);

  return async (args) => {
    const stdout: string[] = [];
    const exit = await runProcess({
      command: 'git',
      args: [...GIT_CONFIG_ARGS, ...args],
      cwd: options.dir,
      env,
      signal: options.signal,
      stdout: createLineSink(NO_REDACTION, (line) => stdout.push(line)),
      stderr: createLineSink(options.redactor, options.onLog),
    }).catch((error: unknown) => {
      if (options.signal.aborted) throw error;
      throw new BuildFailedError('clone_failed', 'git could not be started', { cause: error });
    });
    return { isSuccess: exit.exitCode === 0, stdout };
  };
}

async function expectGit(
  git: GitRun,
  args: string[],
  reason: BuildFailureReason,
  message: string,
): Promise<string[]> {
  const outcome = await git(args);
  if (!outcome.isSuccess) throw new BuildFailedError(reason, message);
  return outcome.stdout;
}

async function fetchNamedRef(git: GitRun, url: string, refName: string): Promise<string> {
  const args = ['fetch', '--quiet', '--depth=1', '--no-tags', '--end-of-options', url, refName];
  await expectGit(git, args, 'clone_failed', 'could not fetch the ref');
  return revParseCommit(git, 'FETCH_HEAD');
}

/** A sha that names no branch or tag: one shallow fetch when full, else the whole history. */
async function fetchCommit(git: GitRun, options: CheckoutOptions): Promise<string> {
  const sha = options.ref.toLowerCase();
  if (!HEX_SHA.test(sha)) {
    throw new BuildFailedError('ref_not_found', 'no branch, tag or commit matches the ref');
  }

  if (sha.length === 40) {
    const shallow = [
      'fetch',
      '--quiet',
      '--depth=1',
      '--no-tags',
      '--end-of-options',
      options.url,
      sha,
    ];
    if ((await git(shallow)).isSuccess) return revParseCommit(git, 'FETCH_HEAD');
  }

  options.onLog('-----> Fetching the full history to find the commit');
  const refspecs = ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'];
  const full = ['fetch', '--quiet', '--end-of-options', options.url, ...refspecs];
  await expectGit(git, full, 'clone_failed', 'could not fetch the repository');
  return revParseCommit(git, sha);
}

async function revParseCommit(git: GitRun, revision: string): Promise<string> {
  const args = ['rev-parse', '--verify', '--quiet', `${revision}^{commit}`];
  const lines = await expectGit(git, args, 'ref_not_found', 'no commit matches the ref');
  const sha = lines[0]?.trim() ?? '';
  if (!/^[0-9a-f]{40}$/.test(sha)) {
    throw new BuildFailedError('ref_not_found', 'no commit matches the ref');
  }
  return sha;
}

function parseLsRemote(lines: string[]): Set<string> {
  const names = new Set<string>();
  for (const line of lines) {
    const name = line.split('\t')[1];
    if (name !== undefined && !name.endsWith('^{}')) names.add(name);
  }
  return names;
}

/** The remote ref a user's ref means: HEAD, a full ref name, a branch, then a tag. */
function matchRef(names: Set<string>, ref: string): string | undefined {
  const candidates =
    ref === 'HEAD' || ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  return candidates.find((name) => names.has(name));
}

function httpOrigin(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}
