import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Git for fixtures: no user or system configuration, a fixed identity. */
const GIT_ENV = {
  PATH: process.env['PATH'] ?? '/usr/bin:/bin',
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};
const IDENTITY = ['-c', 'user.email=builder-test@example.test', '-c', 'user.name=Builder Test'];

export type FixtureFile =
  string | { content: string; executable?: boolean } | { symlinkTo: string };

export interface FixtureRepo {
  path: string;
  /** Writes the files, commits everything, returns the new commit's sha. */
  commit(files: Record<string, FixtureFile>, message?: string): Promise<string>;
  git(...args: string[]): Promise<string>;
}

/**
 * A temp folder other users may pass through (not list): run as root, builds run as workload
 * users, which must reach the repositories inside it, as they reach a developer's home.
 */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `switchyard-${prefix}-`));
  await chmod(dir, 0o711);
  return dir;
}

/** A fresh repository on branch `main` with one commit holding `files`. */
export async function createRepo(
  parent: string,
  files: Record<string, FixtureFile>,
): Promise<FixtureRepo> {
  const path = await mkdtemp(join(parent, 'repo-'));
  // Readable by others, like a repository made with the usual umask (022).
  await chmod(path, 0o755);
  const git = async (...args: string[]) => {
    const { stdout } = await run('git', [...IDENTITY, ...args], { cwd: path, env: GIT_ENV });
    return stdout.trim();
  };
  await git('init', '--quiet', '--initial-branch=main');

  const repo: FixtureRepo = {
    path,
    git,
    async commit(changes, message = 'change') {
      await writeFiles(path, changes);
      await git('add', '--all');
      await git('commit', '--quiet', '--allow-empty', '-m', message);
      return git('rev-parse', 'HEAD');
    },
  };
  await repo.commit(files, 'initial');
  return repo;
}

async function writeFiles(root: string, files: Record<string, FixtureFile>): Promise<void> {
  for (const [name, file] of Object.entries(files)) {
    const path = join(root, name);
    await mkdir(dirname(path), { recursive: true });
    if (typeof file === 'string') {
      await writeFile(path, file);
    } else if ('symlinkTo' in file) {
      await symlink(file.symlinkTo, path);
    } else {
      await writeFile(path, file.content);
      await chmod(path, file.executable === true ? 0o755 : 0o644);
    }
  }
}

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** True while the process runs; a zombie (exited, not yet reaped) counts as gone. */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return !/^\d+ \(.*\) Z/.test(stat);
}
