import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONWebKeySet } from 'jose';
import { createTestApp, signUp, type TestApp } from '../../test/support/app.js';
import { testBackends } from '../../test/support/database.js';
import { pino } from 'pino';
import { insertBuild } from '../builds/build.repository.js';
import { recordSecretAccess } from '../secrets/secret-audit.js';
import { openAuditScope, runInAuditScope } from './audit-context.js';
import { verifyExport } from './audit-export.js';

type User = Awaited<ReturnType<typeof signUp>>;
interface Event {
  id: string;
  seq: number;
  action: string;
  outcome: string;
  actor: { type: string; id: string | null; tokenId: string | null; role: string | null };
  resource: { type: string; id: string | null; name: string | null } | null;
  projectId: string | null;
  requestId: string | null;
  clientIp: string | null;
  userAgent: string | null;
  diff: Record<string, { from: unknown; to: unknown }> | null;
  details: Record<string, unknown> | null;
}
interface EventPage {
  data: Event[];
  nextCursor: string | null;
}

for (const backend of testBackends()) {
  describe(`the audit trail API on ${backend}`, () => {
    let t: TestApp;
    let admin: User;
    let owner: User;
    let developer: User;
    let stranger: User;
    let slug: string;
    let projectId: string;

    const events = async (user: User, query = '') => {
      await t.deps.audit.writer.flush();
      const response = await t.app.inject({
        url: `/v1/audit-events${query}`,
        headers: user.headers,
      });
      assert.equal(response.statusCode, 200, response.body);
      return response.json<EventPage>();
    };
    const eventOf = async (requestId: string) => {
      const page = await events(admin, `?limit=100`);
      return page.data.filter((event) => event.requestId === requestId);
    };

    before(async () => {
      t = await createTestApp(backend);
      admin = await signUp(t.app);
      owner = await signUp(t.app);
      developer = await signUp(t.app);
      stranger = await signUp(t.app);
      slug = `audited-${Date.now().toString(36)}`;
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Audited', slug },
      });
      projectId = created.json<{ id: string }>().id;
      const added = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/members`,
        headers: owner.headers,
        payload: { email: developer.email, role: 'developer' },
      });
      assert.equal(added.statusCode, 201, added.body);
    });
    after(async () => t.close());

    it('records a change with the real actor, their role, the request and a field-level diff', async () => {
      const response = await t.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${slug}`,
        headers: { ...owner.headers, 'x-request-id': 'rename-1', 'user-agent': 'audit-test/1' },
        payload: { name: 'Renamed' },
      });
      assert.equal(response.statusCode, 200, response.body);
      const [event, ...others] = await eventOf('rename-1');
      assert.equal(others.length, 0, 'one event for the request');
      assert.equal(event?.action, 'project.update');
      assert.equal(event.outcome, 'success');
      assert.deepEqual(event.actor, { type: 'user', id: owner.id, tokenId: null, role: 'owner' });
      assert.deepEqual(event.resource, { type: 'project', id: projectId, name: slug });
      assert.equal(event.projectId, projectId);
      assert.equal(event.clientIp, '127.0.0.1');
      assert.equal(event.userAgent, 'audit-test/1');
      assert.deepEqual(event.diff, { name: { from: 'Audited', to: 'Renamed' } });
    });

    it('records denied and failed requests, and sign-in failures, through the batched writer', async () => {
      const denied = await t.app.inject({
        method: 'DELETE',
        url: `/v1/projects/${slug}`,
        headers: { ...developer.headers, 'x-request-id': 'denied-1' },
      });
      assert.equal(denied.statusCode, 403);
      const [deniedEvent] = await eventOf('denied-1');
      assert.equal(deniedEvent?.outcome, 'denied');
      assert.equal(deniedEvent.action, 'DELETE /v1/projects/:project');
      assert.deepEqual(deniedEvent.actor, {
        type: 'user',
        id: developer.id,
        tokenId: null,
        role: 'developer',
      });
      assert.equal(deniedEvent.details?.['errorCode'], 'FORBIDDEN');

      const taken = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/environments`,
        headers: { ...owner.headers, 'x-request-id': 'failed-1' },
        payload: { name: 'staging' },
      });
      assert.equal(taken.statusCode, 409);
      const [failed] = await eventOf('failed-1');
      assert.equal(failed?.outcome, 'failure');
      assert.equal(failed.details?.['errorCode'], 'ENVIRONMENT_NAME_TAKEN');

      const login = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        headers: { 'x-request-id': 'bad-login-1' },
        payload: { email: owner.email, password: 'not the password at all' },
      });
      assert.equal(login.statusCode, 401);
      const [signIn, ...more] = await eventOf('bad-login-1');
      assert.equal(more.length, 0);
      assert.equal(signIn?.action, 'auth.sign_in');
      assert.equal(signIn.outcome, 'failure');
      assert.equal(signIn.details?.['reason'], 'bad_credentials');
      assert.doesNotMatch(JSON.stringify(signIn), /not the password/);
    });

    it('records membership changes as role changes with their diff, in the transaction of the change', async () => {
      const response = await t.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${slug}/members/${developer.id}`,
        headers: { ...owner.headers, 'x-request-id': 'promote-1' },
        payload: { role: 'admin' },
      });
      assert.equal(response.statusCode, 200, response.body);
      const [event] = await eventOf('promote-1');
      assert.equal(event?.action, 'member.role_change');
      assert.deepEqual(event.resource, { type: 'member', id: developer.id, name: null });
      assert.deepEqual(event.diff?.['role'], { from: 'developer', to: 'admin' });
      const demoted = await t.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${slug}/members/${developer.id}`,
        headers: owner.headers,
        payload: { role: 'developer' },
      });
      assert.equal(demoted.statusCode, 200);
    });

    it('records secret writes and reads without their values', async () => {
      const secretValue = 'hunter2-do-not-log-me';
      const write = await t.app.inject({
        method: 'PUT',
        url: `/v1/projects/${slug}/secrets/API_KEY`,
        headers: { ...owner.headers, 'x-request-id': 'secret-write-1' },
        payload: { value: secretValue },
      });
      assert.equal(write.statusCode, 200, write.body);
      const read = await t.app.inject({
        url: `/v1/projects/${slug}/secrets/API_KEY/value`,
        headers: { ...owner.headers, 'x-request-id': 'secret-read-1' },
      });
      assert.equal(read.statusCode, 200, read.body);

      const [written] = await eventOf('secret-write-1');
      assert.equal(written?.action, 'secret.write');
      assert.deepEqual(written.diff, { value: { from: '[REDACTED]', to: '[REDACTED]' } });
      assert.equal(written.resource?.name, 'API_KEY');
      const [readEvent] = await eventOf('secret-read-1');
      assert.equal(readEvent?.action, 'secret.read');
      assert.equal(readEvent.details?.['version'], 1);
      const all = await events(admin, '?limit=100');
      assert.doesNotMatch(JSON.stringify(all), /hunter2/);
    });

    it('masks configuration values in a diff and names the variables that changed', async () => {
      const service = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/services`,
        headers: owner.headers,
        payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
      });
      assert.equal(service.statusCode, 201, service.body);
      const put = await t.app.inject({
        method: 'PUT',
        url: `/v1/services/${service.json<{ id: string }>().id}/env`,
        headers: { ...owner.headers, 'x-request-id': 'vars-1' },
        payload: { variables: { DATABASE_URL: 'postgres://u:pw@db/x', MODE: 'fast' } },
      });
      assert.equal(put.statusCode, 200, put.body);
      const [event] = await eventOf('vars-1');
      assert.equal(event?.action, 'service.variables.replace');
      assert.deepEqual(event.diff, {
        'variables.DATABASE_URL': { from: null, to: '[REDACTED]' },
        'variables.MODE': { from: null, to: '[REDACTED]' },
      });
    });

    it("names the person who asked for a job's work in the events the job records, not the system", async () => {
      const service = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/services`,
        headers: owner.headers,
        payload: { name: 'job-actor', gitUrl: 'https://github.com/acme/jobs.git' },
      });
      const serviceId = service.json<{ id: string }>().id;
      const build = await insertBuild(t.deps.database.db, {
        serviceId,
        ref: 'main',
        createdBy: developer.id,
      });
      const actor = await t.deps.audit.jobActor({ kind: 'build', id: build.id });
      assert.deepEqual(actor, { type: 'user', id: developer.id, tokenId: null, role: null });
      const scope = openAuditScope(
        t.deps.audit.recorder,
        { requestId: 'job-1', clientIp: null, userAgent: 'switchyard-worker build.run' },
        actor,
      );
      runInAuditScope(scope, () =>
        recordSecretAccess(pino({ level: 'silent' }), {
          action: 'deliver',
          actor: 'system',
          secretId: '00000000-0000-4000-8000-000000000001',
          name: 'API_KEY',
          scope: { kind: 'project', projectId },
          version: 1,
        }),
      );
      const [event] = await eventOf('job-1');
      assert.equal(event?.action, 'secret.deliver');
      assert.deepEqual(event.actor, { type: 'user', id: developer.id, tokenId: null, role: null });
      assert.equal(event.details?.['automated'], true);
      assert.deepEqual(await t.deps.audit.jobActor({ kind: 'deployment', id: build.id }), {
        type: 'system',
        id: null,
        tokenId: null,
        role: null,
      });
    });

    it('filters on whitelisted fields only, and refuses any other with 400 INVALID_FILTER', async () => {
      for (const query of ['?actorName=x', '?action=project.update&sql=1', '?orderBy=seq']) {
        const response = await t.app.inject({
          url: `/v1/audit-events${query}`,
          headers: admin.headers,
        });
        assert.equal(response.statusCode, 400, query);
        assert.equal(response.json<{ error: { code: string } }>().error.code, 'INVALID_FILTER');
      }
      const injected = await events(
        admin,
        `?action=${encodeURIComponent("project.update' OR 1=1 --")}`,
      );
      assert.equal(injected.data.length, 0);

      const byAction = await events(admin, '?action=project.update');
      assert.ok(
        byAction.data.length >= 1 &&
          byAction.data.every((event) => event.action === 'project.update'),
      );
      const byActor = await events(admin, `?actor=${developer.id}&outcome=denied`);
      assert.ok(
        byActor.data.length >= 1 &&
          byActor.data.every(
            (event) => event.actor.id === developer.id && event.outcome === 'denied',
          ),
      );
      const byProject = await events(admin, `?project=${slug}&resourceType=member`);
      assert.ok(
        byProject.data.length >= 1 &&
          byProject.data.every(
            (event) => event.projectId === projectId && event.resource?.type === 'member',
          ),
      );
      const future = await events(
        admin,
        `?from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`,
      );
      assert.equal(future.data.length, 0);
      const bad = await t.app.inject({
        url: '/v1/audit-events?actor=not-a-uuid',
        headers: admin.headers,
      });
      assert.equal(bad.statusCode, 400);
    });

    it('pages newest first with a cursor that new events do not disturb', async () => {
      const first = await events(admin, '?limit=3');
      assert.equal(first.data.length, 3);
      assert.ok(first.nextCursor !== null);
      const seqs = first.data.map((event) => event.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => b - a),
      );
      await t.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${slug}`,
        headers: owner.headers,
        payload: { name: 'Moved on' },
      });
      const second = await events(admin, `?limit=3&cursor=${first.nextCursor}`);
      assert.ok((second.data[0]?.seq ?? 0) < (seqs.at(-1) ?? 0));
      const junk = await t.app.inject({
        url: '/v1/audit-events?cursor=bm90LWEtY3Vyc29y',
        headers: admin.headers,
      });
      assert.equal(junk.json<{ error: { code: string } }>().error.code, 'INVALID_CURSOR');
    });

    it('shows Owners their projects only, refuses Developers, hides projects from strangers, shows admins all', async () => {
      const mine = await events(owner, '?limit=100');
      assert.ok(mine.data.length > 0);
      assert.ok(mine.data.every((event) => event.projectId === projectId));
      const asDeveloper = await t.app.inject({
        url: `/v1/audit-events?project=${slug}`,
        headers: developer.headers,
      });
      assert.equal(asDeveloper.statusCode, 403);
      assert.equal(
        (await events(developer)).data.length,
        0,
        'a developer owns no project: nothing to see',
      );
      const asStranger = await t.app.inject({
        url: `/v1/audit-events?project=${slug}`,
        headers: stranger.headers,
      });
      assert.equal(asStranger.statusCode, 404);
      const everything = await events(admin, '?limit=100');
      assert.ok(
        everything.data.some((event) => event.projectId === null),
        'sign-ins and other instance events',
      );
    });

    it('verifies the chain for instance admins only', async () => {
      const response = await t.app.inject({
        url: '/v1/audit-events/verify',
        headers: admin.headers,
      });
      assert.equal(response.statusCode, 200, response.body);
      const report = response.json<{ ok: boolean; checkedEvents: number; firstBreak: unknown }>();
      assert.equal(report.ok, true);
      assert.equal(report.firstBreak, null);
      assert.ok(report.checkedEvents > 5);
      const refused = await t.app.inject({
        url: '/v1/audit-events/verify',
        headers: owner.headers,
      });
      assert.equal(refused.statusCode, 403);
    });

    it('exports a time range as NDJSON that verifies offline against the published keys, and as CSV', async () => {
      await t.deps.audit.writer.flush();
      const from = new Date(Date.now() - 3_600_000).toISOString();
      const to = new Date(Date.now() + 60_000).toISOString();
      const jwks = (await t.app.inject({ url: '/.well-known/jwks.json' })).json<JSONWebKeySet>();

      const full = await t.app.inject({
        url: `/v1/audit-events/export?from=${from}&to=${to}`,
        headers: admin.headers,
      });
      assert.equal(full.statusCode, 200, full.body);
      assert.match(String(full.headers['content-type']), /^application\/x-ndjson/);
      const verified = await verifyExport(full.body.split('\n'), jwks);
      assert.equal(verified.ok, true, JSON.stringify(verified));
      assert.ok(verified.events > 5);

      const tampered = full.body.replace('"outcome":"denied"', '"outcome":"success"');
      assert.notEqual(tampered, full.body);
      const caught = await verifyExport(tampered.split('\n'), jwks);
      assert.equal(caught.ok, false);
      assert.equal(caught.firstBreak?.reason, 'content_hash_mismatch');

      const ownersView = await t.app.inject({
        url: `/v1/audit-events/export?from=${from}&to=${to}`,
        headers: owner.headers,
      });
      const lines = ownersView.body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { kind: string; projectId?: string });
      assert.ok(
        lines.some((line) => line.kind === 'link'),
        'events of others are withheld as links',
      );
      assert.ok(
        lines.filter((line) => line.kind === 'event').every((line) => line.projectId === projectId),
      );
      assert.equal((await verifyExport(ownersView.body.split('\n'), jwks)).ok, true);

      const csv = await t.app.inject({
        url: `/v1/audit-events/export?format=csv&from=${from}&to=${to}`,
        headers: admin.headers,
      });
      assert.match(String(csv.headers['content-type']), /^text\/csv/);
      const rows = csv.body.trim().split('\r\n');
      assert.match(rows[0] ?? '', /^seq,id,occurredAt,actorType/);
      // The exports above were recorded too: the CSV, made later, holds at least as many.
      assert.ok(rows.length - 1 >= verified.events);
      assert.ok(rows.slice(1).every((row) => /^\d+,[0-9a-f-]{36},/.test(row)));
      const unknown = await t.app.inject({
        url: `/v1/audit-events/export?from=${from}&to=${to}&where=1`,
        headers: admin.headers,
      });
      assert.equal(unknown.json<{ error: { code: string } }>().error.code, 'INVALID_FILTER');
    });

    it('exports the writer and chain metrics', async () => {
      const response = await t.app.inject({ url: '/metrics' });
      for (const name of [
        'switchyard_audit_queue_depth',
        'switchyard_audit_spool_depth',
        'switchyard_audit_batch_size',
        'switchyard_audit_flush_duration_seconds',
        'switchyard_audit_events_replayed_total',
        'switchyard_audit_flush_failures_total',
      ]) {
        assert.match(response.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
      }
      assert.match(response.body, /^switchyard_audit_spool_depth 0$/m);
      assert.match(response.body, /^switchyard_audit_batch_size_count [1-9]/m);
      assert.match(
        response.body,
        /^switchyard_audit_events_written_total\{path="transaction"\} [1-9]/m,
      );
    });
  });
}
