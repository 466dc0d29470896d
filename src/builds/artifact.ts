import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  constants,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Content-addressed artifacts. An artifact is a built tree without `.git`, stored at
 * `<artifactRoot>/<hex>/` where hex is the sha256 of the tree's canonical manifest. The manifest
 * sits inside the artifact at MANIFEST_PATH and is itself left out of the digest, so
 * `sha256(manifest.json)` is the digest and anyone can re-check an artifact.
 */
export const MANIFEST_PATH = '.switchyard/manifest.json';
const SWITCHYARD_FOLDER = '.switchyard';

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
export async function readTreeManifest(root: string, signal: AbortSignal): Promise<TreeManifest> {
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

  await mkdir(artifactRoot, { recursive: true });
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
  return { path, type: 'file', executable, size: info.size, sha256: await hashFile(fullPath) };
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

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Copies exactly the manifest's entries; modes are normalised to 0644/0755. */
async function copyTree(from: string, to: string, entries: ManifestEntry[]): Promise<void> {
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
        await copyFile(join(from, entry.path), target, constants.COPYFILE_FICLONE);
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
