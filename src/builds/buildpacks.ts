import { lstat, mkdir, open, readFile, readlink, realpath, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { BuildFailedError } from './build-error.js';
import { STATIC_SERVER_PATH, STATIC_SERVER_SOURCE } from './static-server.js';

/**
 * Buildpacks: what kind of app a checked-out tree is, which commands build it, and how the
 * built artifact starts. Detection order: package.json (node), a Procfile with a `web:` process
 * (procfile), an index.html at the root or in public/ or dist/ (static).
 */
export type BuildKind = 'node' | 'procfile' | 'static';

/** How the runtime starts an artifact; spawned with the artifact folder as cwd. */
export interface StartCommand {
  command: string;
  args: string[];
}

export interface BuildStep {
  command: string;
  args: string[];
  /** The failure reason when the step exits non-zero. */
  failure: 'install_failed' | 'build_failed';
}

export interface BuildPlan {
  kind: BuildKind;
  steps: BuildStep[];
}

interface PackageJson {
  main?: unknown;
  scripts?: Record<string, unknown>;
}

const STATIC_ROOTS = ['.', 'public', 'dist'];
const NODE_ENTRY_FILES = ['server.js', 'index.js'];

// Puts the app's own tools first on PATH, as `npm start` would, without npm at runtime.
const NODE_BIN_PREFIX = 'PATH="$PWD/node_modules/.bin:$PATH"; export PATH; ';

/** Throws BuildFailedError('no_buildpack') when the tree matches no buildpack. */
export async function detectBuildPlan(dir: string): Promise<BuildPlan> {
  const pkg = await readPackageJson(dir);
  if (pkg !== undefined) return { kind: 'node', steps: await nodeSteps(dir, pkg) };
  if ((await readProcfileWeb(dir)) !== undefined) return { kind: 'procfile', steps: [] };
  if ((await findStaticRoot(dir)) !== undefined) return { kind: 'static', steps: [] };

  throw new BuildFailedError(
    'no_buildpack',
    'no buildpack matches: add a package.json, a Procfile with a "web:" process, or an index.html (at the root or in public/ or dist/)',
  );
}

/**
 * The start command of the built tree (read after the build steps, which may create the main
 * file). For a static site this also writes the file server into the tree.
 */
export async function prepareStart(dir: string, kind: BuildKind): Promise<StartCommand> {
  switch (kind) {
    case 'node':
      return nodeStart(dir);
    case 'procfile': {
      const line = await readProcfileWeb(dir);
      if (line === undefined) {
        throw new BuildFailedError('no_buildpack', 'the Procfile has no "web:" process');
      }
      return shellCommand(line);
    }
    case 'static':
      return staticStart(dir);
  }
}

async function nodeSteps(dir: string, pkg: PackageJson): Promise<BuildStep[]> {
  const hasLockfile =
    (await isFile(join(dir, 'package-lock.json'))) ||
    (await isFile(join(dir, 'npm-shrinkwrap.json')));
  const install: BuildStep = hasLockfile
    ? { command: 'npm', args: ['ci', '--no-audit', '--no-fund'], failure: 'install_failed' }
    : { command: 'npm', args: ['install', '--no-audit', '--no-fund'], failure: 'install_failed' };

  if (typeof pkg.scripts?.['build'] !== 'string') return [install];
  return [install, { command: 'npm', args: ['run', 'build'], failure: 'build_failed' }];
}

async function nodeStart(dir: string): Promise<StartCommand> {
  const web = await readProcfileWeb(dir);
  if (web !== undefined) return shellCommand(NODE_BIN_PREFIX + web);

  const pkg = (await readPackageJson(dir)) ?? {};
  const start = pkg.scripts?.['start'];
  if (typeof start === 'string' && start.trim() !== '')
    return shellCommand(NODE_BIN_PREFIX + start);

  const entry = await findNodeEntry(dir, pkg.main);
  if (entry !== undefined) return { command: 'node', args: [`./${entry}`] };

  throw new BuildFailedError(
    'no_buildpack',
    'the node app has no way to start: add a "start" script, a "main" file, server.js, index.js or a Procfile with a "web:" process',
  );
}

async function findNodeEntry(dir: string, main: unknown): Promise<string | undefined> {
  const candidates = [...NODE_ENTRY_FILES];
  if (typeof main === 'string' && main.trim() !== '') {
    const normal = posix.normalize(main.trim());
    // A main outside the tree could not be part of the artifact.
    if (!posix.isAbsolute(normal) && !normal.startsWith('..')) {
      candidates.unshift(normal, `${normal}.js`, posix.join(normal, 'index.js'));
    }
  }
  for (const candidate of candidates) {
    if (await isFile(join(dir, candidate))) return candidate;
  }
  return undefined;
}

async function staticStart(dir: string): Promise<StartCommand> {
  const root = await findStaticRoot(dir);
  if (root === undefined) throw new BuildFailedError('no_buildpack', 'the site has no index.html');

  const folder = join(dir, '.switchyard');
  const existing = await lstat(folder).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new BuildFailedError(
      'artifact_failed',
      'the repository has a .switchyard entry that is not a folder',
    );
  }
  await mkdir(folder, { recursive: true });
  await writeInsideTree(dir, STATIC_SERVER_PATH, STATIC_SERVER_SOURCE);
  return { command: 'node', args: [STATIC_SERVER_PATH, root] };
}

async function findStaticRoot(dir: string): Promise<string | undefined> {
  for (const root of STATIC_ROOTS) {
    // A symlinked site folder could expose files outside the artifact.
    const folder = await lstat(join(dir, root)).catch(() => undefined);
    if (!(folder?.isDirectory() ?? false)) continue;
    if (await isFile(join(dir, root, 'index.html'))) return root;
  }
  return undefined;
}

async function readPackageJson(dir: string): Promise<PackageJson | undefined> {
  const text = await readRegularFile(join(dir, 'package.json'));
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed;
  } catch {
    // Reported below, without echoing the file.
  }
  throw new BuildFailedError('build_failed', 'package.json is not a valid JSON object');
}

/** The command of the Procfile's `web:` process, if there is one. */
async function readProcfileWeb(dir: string): Promise<string | undefined> {
  const text = await readRegularFile(join(dir, 'Procfile'));
  for (const line of text?.split(/\r?\n/) ?? []) {
    const match = /^web\s*:\s*(.+)$/.exec(line.trim());
    if (match?.[1] !== undefined) return match[1].trim();
  }
  return undefined;
}

function shellCommand(line: string): StartCommand {
  return { command: '/bin/sh', args: ['-c', line] };
}

/** Reads a file only when it is a regular file (a symlink could point outside the tree). */
async function readRegularFile(path: string): Promise<string | undefined> {
  if (!(await isFile(path))) return undefined;
  return readFile(path, 'utf8');
}

async function isFile(path: string): Promise<boolean> {
  const info = await lstat(path).catch(() => undefined);
  return info?.isFile() ?? false;
}

/**
 * Writes a new file into the built tree, which belongs to the build's user: whatever is at
 * the path is removed first, the file is created exclusively (never through a link), and it
 * must have landed inside the tree, not behind a folder swapped for a link meanwhile.
 */
async function writeInsideTree(dir: string, path: string, content: string): Promise<void> {
  const fullPath = join(await realpath(dir), path);
  await rm(fullPath, { force: true });
  const file = await open(fullPath, 'wx', 0o644);
  try {
    const landed = await readlink(`/proc/self/fd/${file.fd}`).catch(() => fullPath);
    if (landed !== fullPath) {
      await rm(landed, { force: true });
      throw new BuildFailedError('artifact_failed', 'the tree changed while it was built');
    }
    await file.writeFile(content);
  } finally {
    await file.close();
  }
}
