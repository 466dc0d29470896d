import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestApp, signUp, type TestApp } from '../support/app.js';

type User = Awaited<ReturnType<typeof signUp>>;

// Who may build from a path on Switchyard's own machine: instance admins anywhere but the
// data folder, members only under SWITCHYARD_GIT_LOCAL_ROOTS.
describe('local git paths through the API', () => {
  let t: TestApp;
  let roots: string;
  let admin: User;
  let member: User;
  const stamp = Date.now();

  before(async () => {
    roots = mkdtempSync(join(tmpdir(), 'switchyard-git-roots-'));
    mkdirSync(join(roots, 'allowed', 'repo'), { recursive: true });
    mkdirSync(join(roots, 'elsewhere', 'repo'), { recursive: true });
    t = await createTestApp('pglite', { SWITCHYARD_GIT_LOCAL_ROOTS: join(roots, 'allowed') });
    admin = await signUp(t.app); // the first account is the instance admin
    member = await signUp(t.app);
    for (const user of [member, admin]) {
      const project = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: user.headers,
        payload: { name: 'Local git', slug: slugOf(user) },
      });
      assert.equal(project.statusCode, 201, project.body);
    }
  });

  after(async () => {
    await t.close();
    rmSync(roots, { recursive: true, force: true });
  });

  let count = 0;
  const slugOf = (user: User) => `local-git-${user === admin ? 'admin' : 'member'}-${stamp}`;
  const create = (user: User, gitUrl: string) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/projects/${slugOf(user)}/services`,
      headers: user.headers,
      payload: { name: `svc-${++count}`, gitUrl },
    });

  it('lets a member build from a repository under an allowed root', async () => {
    const response = await create(member, join(roots, 'allowed', 'repo'));
    assert.equal(response.statusCode, 201, response.body);
  });

  it('answers 400 GIT_LOCAL_PATH_REJECTED to a member naming any other path', async () => {
    for (const gitUrl of [
      join(roots, 'elsewhere', 'repo'),
      `${join(roots, 'allowed')}/../elsewhere/repo`,
      `file://${join(roots, 'elsewhere', 'repo')}`,
      '/work/main',
      '/',
    ]) {
      const response = await create(member, gitUrl);
      assert.equal(response.statusCode, 400, `${gitUrl}: ${response.body}`);
      const { error } = response.json<{ error: { code: string; details: unknown } }>();
      assert.equal(error.code, 'GIT_LOCAL_PATH_REJECTED', gitUrl);
      assert.deepEqual(error.details, { reason: 'outside_local_roots' });
    }
  });

  it('lets an instance admin name a path outside the roots, never the data folder', async () => {
    const outside = await create(admin, join(roots, 'elsewhere', 'repo'));
    assert.equal(outside.statusCode, 201, outside.body);

    const inData = [t.dataDir, join(t.dataDir, 'keys'), `file://${join(t.dataDir, 'pgdata')}`];
    for (const gitUrl of inData) {
      const response = await create(admin, gitUrl);
      assert.equal(response.statusCode, 400, `${gitUrl}: ${response.body}`);
      assert.equal(
        response.json<{ error: { code: string } }>().error.code,
        'GIT_LOCAL_PATH_REJECTED',
      );
    }
  });

  it('checks a changed git URL the same way', async () => {
    const created = await create(member, join(roots, 'allowed', 'repo'));
    const id = created.json<{ id: string }>().id;
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/v1/services/${id}`,
      headers: member.headers,
      payload: { gitUrl: join(roots, 'elsewhere', 'repo') },
    });
    assert.equal(patched.statusCode, 400, patched.body);
    assert.equal(patched.json<{ error: { code: string } }>().error.code, 'GIT_LOCAL_PATH_REJECTED');
  });
});
