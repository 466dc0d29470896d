import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestApp, signUp, type TestApp } from '../../test/support/app.js';
import { testBackends } from '../../test/support/database.js';
import { routeTargetOf } from './audit-http.js';

type User = Awaited<ReturnType<typeof signUp>>;
interface Event {
  action: string;
  outcome: string;
  requestId: string | null;
  projectId: string | null;
  environmentId: string | null;
}

describe('the project a request event names, from its route', () => {
  it('reads a project and environment, or a resource id, from the route parameters', () => {
    assert.deepEqual(
      routeTargetOf('/v1/projects/:project/environments/:env', {
        project: 'shop',
        env: 'staging',
      }),
      { kind: 'project', project: 'shop', environment: 'staging' },
    );
    assert.deepEqual(routeTargetOf('/v1/projects/:project', { project: 'shop' }), {
      kind: 'project',
      project: 'shop',
      environment: undefined,
    });
    assert.deepEqual(routeTargetOf('/v1/services/:id/builds', { id: 'x' }), {
      kind: 'service',
      id: 'x',
    });
    assert.deepEqual(routeTargetOf('/v1/deployments/:id', { id: 'x' }), {
      kind: 'deployment',
      id: 'x',
    });
    assert.equal(routeTargetOf('/v1/audit-sinks/:id', { id: 'x' }), undefined);
    assert.equal(routeTargetOf('/v1/projects', {}), undefined);
    assert.equal(routeTargetOf(undefined, { project: 'shop' }), undefined);
  });
});

/**
 * Denied and failed requests leave an event of their own (no change recorded one). It names
 * the project (and environment) of what the URL names, so that the project's Owners and
 * Admins see who was refused what in their project.
 */
for (const backend of testBackends()) {
  describe(`request events placed in their project, on ${backend}`, () => {
    let t: TestApp;
    let admin: User;
    let owner: User;
    let reader: User;
    let otherOwner: User;
    let slug: string;
    let projectId: string;
    let stagingId: string;
    let serviceId: string;

    const eventsFor = async (user: User): Promise<Event[]> => {
      await t.deps.audit.writer.flush();
      const response = await t.app.inject({
        url: '/v1/audit-events?limit=100',
        headers: user.headers,
      });
      assert.equal(response.statusCode, 200, response.body);
      return response.json<{ data: Event[] }>().data;
    };
    const send = async (
      user: User,
      method: 'PATCH' | 'POST' | 'DELETE',
      url: string,
      id: string,
    ) => {
      const response = await t.app.inject({
        method,
        url,
        headers: { ...user.headers, 'x-request-id': id },
        payload: method === 'PATCH' ? { name: 'Renamed' } : method === 'POST' ? {} : undefined,
      });
      return response.statusCode;
    };

    before(async () => {
      t = await createTestApp(backend);
      admin = await signUp(t.app);
      owner = await signUp(t.app);
      reader = await signUp(t.app);
      otherOwner = await signUp(t.app);
      slug = `placed-${Date.now().toString(36)}`;
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.headers,
        payload: { name: 'Placed', slug },
      });
      assert.equal(created.statusCode, 201, created.body);
      projectId = created.json<{ id: string }>().id;
      const envs = await t.app.inject({
        url: `/v1/projects/${slug}/environments`,
        headers: owner.headers,
      });
      const staging = envs
        .json<{ data: Array<{ id: string; name: string }> }>()
        .data.find((env) => env.name === 'staging');
      assert.ok(staging !== undefined);
      stagingId = staging.id;
      const added = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/members`,
        headers: owner.headers,
        payload: { email: reader.email, role: 'readonly' },
      });
      assert.equal(added.statusCode, 201, added.body);
      const service = await t.app.inject({
        method: 'POST',
        url: `/v1/projects/${slug}/services`,
        headers: owner.headers,
        payload: { name: 'web', gitUrl: 'https://github.com/acme/web.git' },
      });
      assert.equal(service.statusCode, 201, service.body);
      serviceId = service.json<{ id: string }>().id;
      const other = await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: otherOwner.headers,
        payload: { name: 'Other', slug: `${slug}-other` },
      });
      assert.equal(other.statusCode, 201, other.body);
    });
    after(async () => t.close());

    it('places denied requests by project slug, project id, environment name and service id', async () => {
      assert.equal(await send(reader, 'PATCH', `/v1/projects/${slug}`, 'placed-slug'), 403);
      assert.equal(await send(reader, 'PATCH', `/v1/projects/${projectId}`, 'placed-id'), 403);
      assert.equal(
        await send(reader, 'DELETE', `/v1/projects/${slug}/environments/staging`, 'placed-env'),
        403,
      );
      assert.equal(
        await send(reader, 'POST', `/v1/services/${serviceId}/builds`, 'placed-service'),
        403,
      );

      const seen = await eventsFor(owner);
      const placed = (id: string) => seen.find((event) => event.requestId === id);
      for (const id of ['placed-slug', 'placed-id', 'placed-service']) {
        assert.equal(placed(id)?.outcome, 'denied', id);
        assert.equal(placed(id)?.projectId, projectId, id);
        assert.equal(placed(id)?.environmentId, null, id);
      }
      assert.equal(placed('placed-env')?.projectId, projectId);
      assert.equal(placed('placed-env')?.environmentId, stagingId);
    });

    it("shows an outsider's failed attempt on a project to its Owners, and to no one else's", async () => {
      const status = await send(
        otherOwner,
        'DELETE',
        `/v1/services/${serviceId}`,
        'placed-outsider',
      );
      assert.equal(status, 404);

      const [event] = (await eventsFor(owner)).filter((e) => e.requestId === 'placed-outsider');
      assert.equal(event?.outcome, 'failure');
      assert.equal(event.projectId, projectId);
      const theirs = await eventsFor(otherOwner);
      assert.equal(
        theirs.some((e) => e.requestId === 'placed-outsider' || e.projectId === projectId),
        false,
        'the outsider reads nothing of a project they cannot see',
      );
    });

    it('leaves an event unplaced when the URL names nothing that exists', async () => {
      const missing = '00000000-0000-4000-8000-000000000000';
      assert.equal(await send(owner, 'DELETE', `/v1/services/${missing}`, 'placed-none'), 404);
      assert.equal(
        await send(owner, 'PATCH', `/v1/projects/no-such-${slug}`, 'placed-none-2'),
        404,
      );

      const all = await eventsFor(admin);
      for (const id of ['placed-none', 'placed-none-2']) {
        const event = all.find((e) => e.requestId === id);
        assert.equal(event?.outcome, 'failure', id);
        assert.equal(event.projectId, null, id);
      }
    });
  });
}
