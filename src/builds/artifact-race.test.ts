import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { publishArtifact, readTreeManifest } from './artifact.js';

// A build's tree belongs to its workload user; a process of the build that outlives it can
// change the tree between the manifest and the copy. What it swaps in must never be copied.
describe('publishArtifact on a tree that changes after its manifest', () => {
  let top = '';
  let secret = '';
  let sequence = 0;

  before(async () => {
    top = await mkdtemp(join(tmpdir(), 'switchyard-artifact-race-'));
    await mkdir(join(top, 'switchyard-keys'));
    secret = join(top, 'switchyard-keys', 'master.key');
    await writeFile(secret, 'the master key', { mode: 0o600 });
  });

  after(async () => {
    await rm(top, { recursive: true, force: true });
  });

  async function treeWith(files: Record<string, string>) {
    const source = join(top, `source-${++sequence}`);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(source, path, '..'), { recursive: true });
      await writeFile(join(source, path), content);
    }
    const manifest = await readTreeManifest(source, new AbortController().signal);
    return { source, manifest, artifacts: join(top, `artifacts-${sequence}`) };
  }

  test('refuses a file swapped for a link to one of our files', async () => {
    const { source, manifest, artifacts } = await treeWith({ 'a.txt': 'a', 'b.txt': 'b' });
    await rm(join(source, 'b.txt'));
    await symlink(secret, join(source, 'b.txt'));

    await assert.rejects(publishArtifact(source, artifacts, manifest));
    assert.deepEqual(await readdir(artifacts), []);
  });

  test('refuses a folder swapped for a link to our folder', async () => {
    const { source, manifest, artifacts } = await treeWith({ 'keys/master.key': 'decoy' });
    await rm(join(source, 'keys'), { recursive: true });
    await symlink(join(top, 'switchyard-keys'), join(source, 'keys'));

    await assert.rejects(publishArtifact(source, artifacts, manifest), /inside the built tree/);
    assert.deepEqual(await readdir(artifacts), []);
  });

  test('refuses content that differs from what the manifest hashed', async () => {
    const { source, manifest, artifacts } = await treeWith({ 'server.js': 'good' });
    await writeFile(join(source, 'server.js'), 'planted');

    await assert.rejects(publishArtifact(source, artifacts, manifest), /changed while/);
    assert.deepEqual(await readdir(artifacts), []);
  });
});
