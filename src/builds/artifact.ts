import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import {
  chmod,
  constants,
  open,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  realpath,
  rename,
  rm,
  symlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Content-addressed artifacts. An artifact is a built tree without `.git`, stored at
 * `<artifactRoot>/<hex>/` where hex is the sha256 of the tree's canonical manifest. The manifest
 * sits inside the artifact at MANIFEST_PATH and is itself left out of the digest, so
 * `sha256(manifest.json)` is the digest and anyone can re-check an artifact.
 */
export const MANIFEST_PATH = '.switchyard/manifest.json';
const SWITCHYARD_FOLDER = '.switchyard';

type ManifestFile = Extract<ManifestEntry, { type: 'file' }>;

export type ManifestEntry =
  | { path: string; type: 'dir' }
  | { path: string; type: 'file'; executable: boolean; size: number; sha256: string }
  | { path: string; type: 'symlink'; target: string };

export interface TreeManifest {
  version: 1;
  /** Sorted by path (UTF-16 code unit order), paths relative with `/`. */
  entries: ManifestEntry[];
}

export interface PublishedArtifact {
  path: string;
  /** True when an artifact with this digest already existed and was reused. */
  isReused: boolean;
}

/** Walks `root`, skipping every `.git` folder, sockets and devices. Honours `signal`. */
export async function readTreeManifest(tree: string, signal: AbortSignal): Promise<TreeManifest> {
  // Real, so that a file opened inside it can be checked to be where it was named.
  const root = await realpath(tree);
  const entries: ManifestEntry[] = [];
  const pending = [''];

  for (let folder = pending.pop(); folder !== undefined; folder = pending.pop()) {
    signal.throwIfAborted();
    for (const dirent of await readdir(join(root, folder), { withFileTypes: true })) {
      const path = folder === '' ? dirent.name : `${folder}/${dirent.name}`;
      if (path === MANIFEST_PATH || (dirent.name === '.git' && dirent.isDirectory())) continue;

      const entry = await describeEntry(root, path);
      if (entry?.type === 'dir') pending.push(path);
      // Every artifact has this folder (it holds the manifest), so its presence says nothing.
      if (entry === undefined || (entry.type === 'dir' && path === SWITCHYARD_FOLDER)) continue;
      entries.push(entry);
    }
  }

  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { version: 1, entries };
}

/** The canonical bytes of a manifest and their sha256, in hex. */
export function encodeManifest(manifest: TreeManifest): { json: string; hex: string } {
  const entries = manifest.entries.map(canonicalEntry);
  const json = JSON.stringify({ version: manifest.version, entries });
  return { json, hex: createHash('sha256').update(json).digest('hex') };
}

export function manifestSizeBytes(manifest: TreeManifest): number {
  return manifest.entries.reduce(
    (total, entry) => total + (entry.type === 'file' ? entry.size : 0),
    0,
  );
}

/**
 * Copies the tree described by `manifest` from `sourceDir` to `<artifactRoot>/<hex>/`, unless
 * that folder exists already. The copy is built in a temporary sibling folder and renamed into
 * place, so an artifact folder is either complete or absent.
 */
export async function publishArtifact(
  sourceDir: string,
  artifactRoot: string,
  manifest: TreeManifest,
): Promise<PublishedArtifact> {
  const { json, hex } = encodeManifest(manifest);
  const target = join(artifactRoot, hex);
  if (await exists(join(target, MANIFEST_PATH))) return { path: target, isReused: true };

  // Entered by workload users, never listed: a digest must be known to reach an artifact.
  await mkdir(artifactRoot, { recursive: true, mode: 0o711 });
  const staging = await mkdtemp(join(artifactRoot, '.tmp-'));
  try {
    // Created first: a tree whose .switchyard is a file or a symlink then fails to copy.
    await mkdir(join(staging, SWITCHYARD_FOLDER), { mode: 0o755 });
    await copyTree(sourceDir, staging, manifest.entries);
    await writeManifest(staging, json);
    await chmod(staging, 0o755);
    return await moveIntoPlace(staging, target);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function describeEntry(root: string, path: string): Promise<ManifestEntry | undefined> {
  const fullPath = join(root, path);
  const info = await lstat(fullPath);
  if (info.isDirectory()) return { path, type: 'dir' };
  if (info.isSymbolicLink()) return { path, type: 'symlink', target: await readlink(fullPath) };
  if (!info.isFile()) return undefined;

  const executable = (info.mode & 0o111) !== 0;
  return { path, type: 'file', executable, size: info.size, sha256: await hashFile(root, path) };
}

function canonicalEntry(entry: ManifestEntry): ManifestEntry {
  switch (entry.type) {
    case 'dir':
      return { path: entry.path, type: 'dir' };
    case 'symlink':
      return { path: entry.path, type: 'symlink', target: entry.target };
    case 'file': {
      const { path, executable, size, sha256 } = entry;
      return { path, type: 'file', executable, size, sha256 };
    }
  }
}

async function hashFile(root: string, path: string): Promise<string> {
  const file = await openInTree(root, path);
  try {
    const hash = createHash('sha256');
    for await (const chunk of file.createReadStream({ autoClose: false })) {
      hash.update(chunk as Buffer);
    }
    return hash.digest('hex');
  } finally {
    await file.close();
  }
}

/**
 * Opens the regular file at `root/path` for reading, making sure it is that file: the tree
 * belongs to a build that ran as another user, and a process of it that outlived the build
 * could swap a file or a folder on the way for a link to one of Switchyard's own files. The
 * last step must not be a link (O_NOFOLLOW), and the opened file's real path, read back from
 * /proc, must be the one named. `root` must be a real path.
 */
async function openInTree(root: string, path: string): Promise<FileHandle> {
  const fullPath = join(root, path);
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const file = await open(fullPath, flags);
  try {
    if (!(await file.stat()).isFile()) throw new Error(`${path} is no longer a regular file`);
    // Without /proc (not Linux) only O_NOFOLLOW guards, and there are no workload users.
    const opened = await readlink(`/proc/self/fd/${file.fd}`).catch(() => fullPath);
    if (opened !== fullPath) throw new Error(`${path} does not lie inside the built tree`);
    return file;
  } catch (error) {
    await file.close();
    throw error;
  }
}

/** Copies one file through `openInTree`, failing when its content is not what was hashed. */
async function copyVerified(from: string, entry: ManifestFile, target: string): Promise<void> {
  const file = await openInTree(from, entry.path);
  try {
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const output = createWriteStream(target, { flags: 'wx', mode: 0o644 });
    await pipeline(file.createReadStream({ autoClose: false }), hashing, output);
    if (hash.digest('hex') !== entry.sha256) {
      throw new Error(`${entry.path} changed while the artifact was stored`);
    }
  } finally {
    await file.close();
  }
}

/** Copies exactly the manifest's entries; modes are normalised to 0644/0755. */
async function copyTree(from: string, to: string, entries: ManifestEntry[]): Promise<void> {
  const root = await realpath(from);
  for (const entry of entries) {
    const target = join(to, entry.path);
    switch (entry.type) {
      case 'dir':
        await mkdir(target, { mode: 0o755 });
        break;
      case 'symlink':
        await symlink(entry.target, target);
        break;
      case 'file':
        await copyVerified(root, entry, target);
        await chmod(target, entry.executable ? 0o755 : 0o644);
        break;
    }
  }
}

async function writeManifest(staging: string, json: string): Promise<void> {
  const folder = join(staging, SWITCHYARD_FOLDER);
  const info = await lstat(folder).catch(() => undefined);
  if (info !== undefined && !info.isDirectory()) {
    throw new Error('the tree has a .switchyard entry that is not a folder');
  }
  await mkdir(folder, { recursive: true, mode: 0o755 });
  await writeFile(join(staging, MANIFEST_PATH), json, { mode: 0o644 });
}

/** Renames the staging folder into place; losing a race to an identical build is reuse. */
async function moveIntoPlace(staging: string, target: string): Promise<PublishedArtifact> {
  try {
    await rename(staging, target);
    return { path: target, isReused: false };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return { path: target, isReused: true };
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
