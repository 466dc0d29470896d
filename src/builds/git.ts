import { realpath, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { localGitPath } from '../platform/url-guard.js';
import type { RunAs } from '../platform/workload-users.js';
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
  /** The user git runs as (the project's workload user); absent, Switchyard's own. */
  runAs?: RunAs | undefined;
  /**
   * A folder of Switchyard's, not writable by `runAs`, for git's configuration file. Without
   * it git reads no configuration file at all.
   */
  configDir?: string | undefined;
  /** A local repository inside this folder (Switchyard's data folder) is refused. */
  refusedLocalRoot?: string | undefined;
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
  globalConfig = '/dev/null',
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: SYSTEM_PATH,
    HOME: home,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: globalConfig,
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
export async function checkoutRef(given: CheckoutOptions): Promise<string> {
  assertSafeRef(given.ref);
  const localPath = await checkLocalRepository(given.url, given.refusedLocalRoot);
  // Git reads the path that was checked, not one a link could redirect later.
  const options = { ...given, url: localUrl(given.url, localPath) ?? given.url };
  const globalConfig = await writeGitConfig(options.configDir, localPath);
  const git = gitRunner(options, globalConfig);

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

/**
 * The real path of a local repository (`/path` or `file:///path`), or undefined for a remote
 * one. The service's URL was checked when it was saved; links may have moved since, so a
 * repository that now resolves into Switchyard's data folder is refused here too.
 */
async function checkLocalRepository(
  url: string,
  refusedRoot: string | undefined,
): Promise<string | undefined> {
  const path = localGitPath(url);
  if (path === undefined) return undefined;
  if (url.startsWith('file://') && url.includes('%')) {
    throw new BuildFailedError('clone_failed', 'file:// git URLs must not be percent-encoded');
  }
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined) {
    throw new BuildFailedError('clone_failed', 'the local repository does not exist');
  }
  // A folder that does not exist holds no repository.
  const refused =
    refusedRoot === undefined ? undefined : await realpath(refusedRoot).catch(() => undefined);
  if (refused !== undefined && isInside(real, refused)) {
    throw new BuildFailedError(
      'clone_failed',
      "local repositories inside Switchyard's data folder are refused",
    );
  }
  return real;
}

function isInside(path: string, folder: string): boolean {
  const within = relative(folder, path);
  return (
    within === '' || (within !== '..' && !within.startsWith(`..${sep}`) && !isAbsolute(within))
  );
}

/**
 * Git refuses to read a repository another user owns ("dubious ownership"), which a local
 * repository is to a workload user. The one repository named is declared safe in a file of
 * Switchyard's; nothing else is configured. Returns the file, or /dev/null.
 */
async function writeGitConfig(
  configDir: string | undefined,
  localPath: string | undefined,
): Promise<string> {
  if (configDir === undefined || localPath === undefined) return '/dev/null';
  const file = join(configDir, 'gitconfig');
  const quoted = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;
  const lines = [
    '[safe]',
    ...[localPath, `${localPath}/.git`].map((p) => `\tdirectory = ${quoted(p)}`),
  ];
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o644, flag: 'wx' });
  return file;
}

function gitRunner(options: CheckoutOptions, globalConfig: string): GitRun {
  const env = gitEnvironment(options.home, options.url, options.credentials, globalConfig);

  return async (args) => {
    const stdout: string[] = [];
    const exit = await runProcess({
      command: 'git',
      args: [...GIT_CONFIG_ARGS, ...args],
      cwd: options.dir,
      env,
      runAs: options.runAs,
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

/** `url` pointing at `realPath` instead, in the same form (a path or a file:// URL). */
function localUrl(url: string, realPath: string | undefined): string | undefined {
  if (realPath === undefined) return undefined;
  return url.startsWith('file://') ? `file://${realPath}` : realPath;
}
