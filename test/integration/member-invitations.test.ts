import { after, before, describe, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import { insertPendingSignUp, setSignUpToken } from '../../src/auth/sign-up.repository.js';
import { hashOpaqueToken } from '../../src/auth/tokens.js';
import {
  FAST_HASHING,
  assertError,
  createProject,
  del,
  post,
  type ProjectFixture,
  type User,
} from './fixtures.js';

const nobody = () => `nobody-${randomBytes(6).toString('hex')}@example.com`;

interface MemberRow {
  userId: string;
  email: string;
  role: string;
  environmentId: string | null;
}
interface InvitationRow {
  id: string;
  email: string;
  role: string;
}

for (const backend of testBackends()) {
  describe(`adding members by email on ${backend}`, () => {
    let t: TestApp;
    let owner: User;
    let project: ProjectFixture;

    const asOwner = (options: InjectOptions) =>
      t.app.inject({ ...options, headers: owner.headers });
    const url = (path: string) => `/v1/projects/${project.slug}${path}`;
    const add = (email: string, extra: Record<string, unknown> = {}) =>
      asOwner(post(url('/members'), { email, role: 'developer', ...extra }));

    async function listMembers(): Promise<MemberRow[]> {
      const listed = await asOwner({ url: url('/members?limit=100') });
      assert.equal(listed.statusCode, 200, listed.body);
      return listed.json<{ data: MemberRow[] }>().data;
    }
    async function listInvitations(): Promise<InvitationRow[]> {
      const listed = await asOwner({ url: url('/invitations?limit=100') });
      assert.equal(listed.statusCode, 200, listed.body);
      return listed.json<{ data: InvitationRow[] }>().data;
    }

    before(async () => {
      t = await createTestApp(backend, FAST_HASHING);
      await signUp(t.app); // the instance admin
      owner = await signUp(t.app);
      project = await createProject(t, owner);
    });
    after(async () => {
      await t.close();
    });

    it('answers an address without an account exactly like one with an account', async () => {
      const account = await signUp(t.app);
      const stranger = nobody();
      const forAccount = await add(account.email, { environment: 'staging' });
      const forStranger = await add(stranger, { environment: 'staging' });
      assert.equal(forAccount.statusCode, 201, forAccount.body);
      assert.equal(forStranger.statusCode, forAccount.statusCode);
      const shape = (body: Record<string, unknown>) => ({ ...body, email: '(address)' });
      assert.deepEqual(shape(forStranger.json()), shape(forAccount.json()));
      assert.equal(forStranger.headers['content-type'], forAccount.headers['content-type']);

      // Adding either again is a conflict, which the owner can see in their own lists anyway.
      assertError(await add(account.email), 409, 'MEMBER_EXISTS');
      assertError(await add(stranger), 409, 'MEMBER_EXISTS');
      assert.ok((await listMembers()).some((row) => row.userId === account.id));
      assert.ok((await listInvitations()).some((row) => row.email === stranger));
    });

    it('turns an invitation into the membership when the address signs up', async () => {
      const email = nobody();
      assert.equal((await add(email.toUpperCase(), { environment: 'staging' })).statusCode, 201);
      const invited = (await listInvitations()).find((row) => row.email === email);
      assert.equal(invited?.role, 'developer');

      const joined = await signUp(t.app, { email });
      const member = (await listMembers()).find((row) => row.userId === joined.id);
      assert.equal(member?.role, 'developer');
      assert.notEqual(member?.environmentId, null, 'the environment limit came with it');
      assert.equal(
        (await listInvitations()).find((row) => row.email === email),
        undefined,
      );
      const seen = await t.app.inject({ url: url(''), headers: joined.headers });
      assert.equal(seen.statusCode, 200, seen.body);
    });

    it('turns an invitation into the membership when a verified sign-up is redeemed', async () => {
      const email = nobody();
      assert.equal((await add(email, { role: 'readonly' })).statusCode, 201);
      const db = t.deps.database.db;
      const token = `syv_${randomBytes(32).toString('base64url')}`;
      const expiresAt = new Date(Date.now() + 3_600_000);
      const id = await insertPendingSignUp(db, {
        email,
        name: 'Verified',
        passwordHash: 'not-a-real-hash',
        expiresAt,
      });
      await setSignUpToken(db, id, { hash: hashOpaqueToken(token), expiresAt });
      const verified = await t.app.inject(post('/v1/auth/verify', { token }));
      assert.ok(verified.statusCode < 300, verified.body);
      const userId = verified.json<{ id: string }>().id;
      const member = (await listMembers()).find((row) => row.userId === userId);
      assert.equal(member?.role, 'readonly');
    });

    it('claims neither an expired invitation nor a revoked one', async () => {
      const lapsed = nobody();
      assert.equal((await add(lapsed)).statusCode, 201);
      await t.deps.database.db
        .updateTable('project_invitations')
        .set({ invite_expires_at: new Date(Date.now() - 1000) })
        .where('email', '=', lapsed)
        .execute();
      assert.equal(
        (await listInvitations()).find((row) => row.email === lapsed),
        undefined,
      );

      const withdrawn = nobody();
      assert.equal((await add(withdrawn)).statusCode, 201);
      const invitation = (await listInvitations()).find((row) => row.email === withdrawn);
      assert.ok(invitation);
      const revoked = await asOwner(del(url(`/invitations/${invitation.id}`)));
      assert.equal(revoked.statusCode, 204, revoked.body);
      assertError(
        await asOwner(del(url(`/invitations/${invitation.id}`))),
        404,
        'INVITATION_NOT_FOUND',
      );

      for (const email of [lapsed, withdrawn]) {
        const joined = await signUp(t.app, { email });
        assert.equal(
          (await listMembers()).find((row) => row.userId === joined.id),
          undefined,
        );
        const seen = await t.app.inject({ url: url(''), headers: joined.headers });
        assertError(seen, 404, 'PROJECT_NOT_FOUND');
      }
      // An expired invitation does not block a new one.
      assert.equal((await add(nobody())).statusCode, 201);
    });

    it('refuses an expiry in the past for an invitation too', async () => {
      assertError(
        await add(nobody(), { expiresAt: '2020-01-01T00:00:00Z' }),
        400,
        'MEMBER_EXPIRY_INVALID',
      );
    });
  });
}
