import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { encodeManifest, MANIFEST_PATH, publishArtifact, readTreeManifest } from './artifact.js';
import { makeTempDir } from './test-support/git-repos.js';

let dir: string;
let count = 0;
const signal = new AbortController().signal;

before(async () => {
  dir = await makeTempDir('artifact');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function makeTree(): Promise<string> {
  const tree = join(dir, `tree-${(count += 1)}`);
  await mkdir(join(tree, 'bin'), { recursive: true });
  await mkdir(join(tree, '.git'));
  await mkdir(join(tree, 'vendor/lib/.git'), { recursive: true });
  await writeFile(join(tree, '.git/config'), 'url = https://example.test');
  await writeFile(join(tree, 'vendor/lib/.git/HEAD'), 'ref');
  await writeFile(join(tree, 'bin/run'), '#!/bin/sh\n');
  await chmod(join(tree, 'bin/run'), 0o755);
  await writeFile(join(tree, 'app.js'), 'console.log(1)');
  await symlink('bin/run', join(tree, 'run'));
  return tree;
}

async function hexOf(tree: string): Promise<string> {
  return encodeManifest(await readTreeManifest(tree, signal)).hex;
}

test('the digest ignores mtimes, .git folders and a manifest already in the tree', async () => {
  const first = await makeTree();
  const second = await makeTree();
  await utimes(join(second, 'app.js'), 1, 1);
  await writeFile(join(second, '.git/config'), 'different');
  await mkdir(join(second, '.switchyard'));
  await writeFile(join(second, MANIFEST_PATH), '{"forged":true}');
  await rm(join(first, '.git'), { recursive: true });

  const manifest = await readTreeManifest(first, signal);
  assert.ok(manifest.entries.every((entry) => !entry.path.split('/').includes('.git')));
  assert.equal(await hexOf(second), encodeManifest(manifest).hex);
});

test('a published artifact re-hashes to its own digest', async () => {
  const tree = await makeTree();
  const manifest = await readTreeManifest(tree, signal);
  const published = await publishArtifact(tree, join(dir, 'rehash'), manifest);
  assert.equal(await hexOf(published.path), encodeManifest(manifest).hex);
});

test('the digest changes with the exec bit, a symlink target or one byte of content', async () => {
  const base = await hexOf(await makeTree());

  const execTree = await makeTree();
  await chmod(join(execTree, 'app.js'), 0o755);
  const linkTree = await makeTree();
  await rm(join(linkTree, 'run'));
  await symlink('app.js', join(linkTree, 'run'));
  const byteTree = await makeTree();
  await writeFile(join(byteTree, 'app.js'), 'console.log(2)');

  const others = [await hexOf(execTree), await hexOf(linkTree), await hexOf(byteTree)];
  assert.ok(others.every((hex) => hex !== base));
});

test('publishing twice stores one folder and leaves no staging folders behind', async () => {
  const artifactRoot = join(dir, 'artifacts');
  const tree = await makeTree();
  const manifest = await readTreeManifest(tree, signal);

  const first = await publishArtifact(tree, artifactRoot, manifest);
  const second = await publishArtifact(tree, artifactRoot, manifest);
  assert.equal(first.isReused, false);
  assert.equal(second.isReused, true);
  assert.equal(second.path, first.path);
  assert.deepEqual(await readdir(artifactRoot), [encodeManifest(manifest).hex]);
});

test('refuses a tree whose .switchyard entry is a symlink', async () => {
  const tree = await makeTree();
  const elsewhere = join(dir, 'elsewhere');
  await mkdir(elsewhere);
  await symlink(elsewhere, join(tree, '.switchyard'));
  const manifest = await readTreeManifest(tree, signal);

  await assert.rejects(publishArtifact(tree, join(dir, 'artifacts-2'), manifest));
  assert.deepEqual(await readdir(elsewhere), []);
});
