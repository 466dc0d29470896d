import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type CompiledQuery, type QueryResult } from 'kysely';
import { insertBuild } from '../../src/builds/build.repository.js';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import { addMember, createProject, uniqueName, type User, FAST_HASHING } from './fixtures.js';

interface ProjectItem {
  id: string;
  createdAt: string;
}
interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

// Rows written with these exact instants tie with each other; the two later ones differ by
// one microsecond, which a millisecond timestamp cannot tell apart.
const FUTURE_TIE = '2031-05-05T05:05:05.123456Z';
const FUTURE_TIE_PLUS_1US = '2031-05-05T05:05:05.123457Z';
const PAST_TIE = '2020-01-01T00:00:00.000001Z';
const BACKGROUND = /"?audit_[a-z_]+"?/;

for (const backend of testBackends()) {
  describe(`keyset pagination on ${backend}`, () => {
    let t: TestApp;
    let lister: User;
    let stranger: User;

    const get = async <T>(user: User, url: string) => {
      const response = await t.app.inject({ url, headers: user.headers });
      assert.equal(response.statusCode, 200, `${url}: ${response.body}`);
      return response.json<Page<T>>();
    };

    /** Walks every page of `url` with `limit`; returns the pages. */
    async function pagesOf<T>(user: User, url: string, limit: number): Promise<Array<Page<T>>> {
      const pages: Array<Page<T>> = [];
      let cursor: string | null = null;
      do {
        const separator = url.includes('?') ? '&' : '?';
        const query: string =
          cursor === null ? `limit=${limit}` : `limit=${limit}&cursor=${cursor}`;
        const page: Page<T> = await get<T>(user, `${url}${separator}${query}`);
        pages.push(page);
        cursor = page.nextCursor;
        assert.ok(pages.length <= 100, 'pagination does not end');
      } while (cursor !== null);
      return pages;
    }

    /** Projects the user is a member of, in the order the API promises: newest first, id breaking ties. */
    async function expectedOrder(user: User): Promise<string[]> {
      const rows = await t.deps.database.db
        .selectFrom('projects')
        .innerJoin('project_members as pm', 'pm.project_id', 'projects.id')
        .select('projects.id')
        .where('pm.user_id', '=', user.id)
        .orderBy('projects.created_at', 'desc')
        .orderBy('projects.id', 'desc')
        .execute();
      return rows.map((row) => row.id);
    }

    async function insertProjectsAt(
      owner: User,
      count: number,
      createdAt: string | undefined,
    ): Promise<void> {
      await t.deps.database.db.transaction().execute(async (trx) => {
        for (let i = 0; i < count; i++) {
          const slug = uniqueName('tie');
          const row = await trx
            .insertInto('projects')
            .values({
              slug,
              name: slug,
              created_by: owner.id,
              ...(createdAt === undefined
                ? {}
                : { created_at: sql<Date>`${createdAt}::timestamptz` }),
            })
            .returning('id')
            .executeTakeFirstOrThrow();
          await trx
            .insertInto('project_members')
            .values({ project_id: row.id, user_id: owner.id, role: 'owner' })
            .execute();
        }
      });
    }

    /**
     * The statements the database runs on behalf of `work`: those issued in its async context,
     * less the audit trail's batches (queued by the request, written off its path).
     */
    async function queriesOf(work: () => Promise<unknown>): Promise<string[]> {
      const executor = t.deps.database.db.getExecutor();
      const original = executor.executeQuery.bind(executor);
      const scope = new AsyncLocalStorage<true>();
      const seen: string[] = [];
      executor.executeQuery = <R>(query: CompiledQuery<R>): Promise<QueryResult<R>> => {
        if (scope.getStore() === true && !BACKGROUND.test(query.sql))
          seen.push(query.sql.slice(0, 60));
        return original(query);
      };
      try {
        await scope.run(true, work);
      } finally {
        executor.executeQuery = original;
      }
      return seen;
    }

    before(async () => {
      t = await createTestApp(backend, FAST_HASHING);
      await signUp(t.app); // the first account is the instance admin, who sees every project
      lister = await signUp(t.app);
      stranger = await signUp(t.app);
      for (let i = 0; i < 25; i++) {
        await createProject(t, lister);
        if (i % 5 === 0) await createProject(t, stranger);
      }
      await insertProjectsAt(lister, 5, undefined); // one transaction: now() is the same for all five
      await insertProjectsAt(lister, 6, FUTURE_TIE);
      await insertProjectsAt(lister, 2, FUTURE_TIE_PLUS_1US);
      await insertProjectsAt(lister, 7, PAST_TIE);
    });
    after(async () => t.close());

    it('pages 45 projects by 7 with nothing skipped or repeated, newest first, ties included', async () => {
      const expected = await expectedOrder(lister);
      assert.equal(expected.length, 45);
      const pages = await pagesOf<ProjectItem>(lister, '/v1/projects', 7);
      assert.deepEqual(
        pages.map((page) => page.data.length),
        [7, 7, 7, 7, 7, 7, 3],
      );
      assert.deepEqual(
        pages.map((page) => page.nextCursor === null),
        [false, false, false, false, false, false, true],
      );

      const ids = pages.flatMap((page) => page.data.map((project) => project.id));
      assert.equal(new Set(ids).size, 45, 'no project twice');
      assert.deepEqual(ids, expected);
      const times = pages.flatMap((page) =>
        page.data.map((project) => Date.parse(project.createdAt)),
      );
      for (let i = 1; i < times.length; i++)
        assert.ok((times[i - 1] ?? 0) >= (times[i] ?? 0), `newest first at ${i}`);
      assert.equal(new Date(times[0] ?? 0).toISOString(), '2031-05-05T05:05:05.123Z');
    });

    it('ends with a null cursor, not an empty page, when the last page is full', async () => {
      for (const [limit, shape] of [
        [9, [9, 9, 9, 9, 9]],
        [45, [45]],
        [100, [45]],
        [1, Array.from({ length: 45 }, () => 1)],
      ] as const) {
        const pages = await pagesOf<ProjectItem>(lister, '/v1/projects', limit);
        assert.deepEqual(
          pages.map((page) => page.data.length),
          shape,
          `limit ${limit}`,
        );
      }
    });

    it('neither skips nor repeats a project when others are created between pages', async () => {
      const expected = await expectedOrder(lister);
      const first = await get<ProjectItem>(lister, '/v1/projects?limit=7');
      await createProject(t, lister);
      await insertProjectsAt(lister, 2, PAST_TIE);
      const rest: ProjectItem[] = [];
      let cursor = first.nextCursor;
      while (cursor !== null) {
        const page: Page<ProjectItem> = await get<ProjectItem>(
          lister,
          `/v1/projects?limit=7&cursor=${cursor}`,
        );
        rest.push(...page.data);
        cursor = page.nextCursor;
      }
      const seen = [...first.data, ...rest].map((project) => project.id);
      assert.equal(new Set(seen).size, seen.length, 'no project twice');
      assert.deepEqual(
        seen.filter((id) => expected.includes(id)),
        expected,
      );
      assert.equal(
        seen.length,
        expected.length + 3,
        'the new projects sort into the pages not yet read',
      );
    });

    it('lists only the projects the caller belongs to', async () => {
      const pages = await pagesOf<ProjectItem>(stranger, '/v1/projects', 2);
      assert.deepEqual(
        pages.flatMap((page) => page.data.map((p) => p.id)),
        await expectedOrder(stranger),
      );
      assert.equal(pages.flatMap((page) => page.data).length, 5);
    });

    it('costs the same number of queries for a page of 1 as for a page of 100, on every list', async () => {
      const project = await createProject(t, lister);
      for (let i = 0; i < 6; i++)
        await t.app.inject({
          method: 'POST',
          url: `/v1/projects/${project.slug}/services`,
          headers: lister.headers,
          payload: { name: `svc-${i}`, gitUrl: 'https://github.com/acme/x.git' },
        });
      for (let i = 0; i < 4; i++) await addMember(t, project, await signUp(t.app), 'readonly');
      for (let i = 0; i < 6; i++)
        await insertBuild(t.deps.database.db, {
          serviceId: project.serviceId,
          ref: `ref-${i}`,
          createdBy: lister.id,
        });
      const lists = [
        '/v1/projects',
        `/v1/projects/${project.slug}/environments`,
        `/v1/projects/${project.slug}/members`,
        `/v1/projects/${project.slug}/services`,
        `/v1/services/${project.serviceId}/builds`,
        `/v1/services/${project.serviceId}/releases`,
        `/v1/services/${project.serviceId}/deployments`,
      ];
      for (const list of lists) {
        const small = await queriesOf(() => get(lister, `${list}?limit=1`));
        const large = await queriesOf(async () => {
          const page = await get(lister, `${list}?limit=100`);
          const isEmpty = list.endsWith('releases') || list.endsWith('deployments');
          if (!isEmpty) assert.ok(page.data.length >= 3, `${list} has rows`);
        });
        const { nextCursor } = await get(lister, `${list}?limit=1`);
        const later =
          nextCursor === null
            ? small
            : await queriesOf(() => get(lister, `${list}?limit=1&cursor=${nextCursor}`));
        assert.ok(small.length > 0, 'the spy sees the queries');
        assert.deepEqual(large, small, `${list}: one row and a full page cost the same`);
        assert.deepEqual(later, small, `${list}: a later page costs the same`);
      }
    });
  });
}
