import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { testBackends } from '../../test/support/database.js';
import { REDACTED, textForms } from '../platform/known-secrets.js';
import { createRepo, makeTempDir } from '../builds/test-support/git-repos.js';
import {
  eventually,
  seedProject,
  startLockboxApp,
  type LockboxApp,
} from './test-support/lockbox-app.js';
import { rotate, settled } from './test-support/rotation-bench.js';

const SERVER = String.raw`
const http = require('node:http');
console.log('booting with LEAKY=' + process.env.LEAKY);
console.error('pem follows:\n' + process.env.PEM + '\npem done');
console.log('tricky is ' + process.env.TRICKY);
console.log('committed: ' + require('node:fs').readFileSync('committed.env', 'utf8'));
http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : 'hello')).listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => process.exit(0));
`;

/** Reads a server-sent event stream until `enough` says so (or a deadline passes). */
async function readStream(
  url: string,
  headers: Record<string, string>,
  enough: (text: string) => boolean,
): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  let text = '';
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    const decoder = new TextDecoder();
    for await (const chunk of response.body ?? []) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      if (enough(text)) break;
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return text;
}

for (const backend of testBackends()) {
  describe(`planted secrets reach no log, stream or message on ${backend}`, () => {
    let t: LockboxApp;
    let base: string;
    let fixtures: string;
    before(async () => {
      t = await startLockboxApp(backend, { workers: true });
      base = await t.app.listen({ host: '127.0.0.1', port: 0 });
      fixtures = await makeTempDir('leak');
    });
    after(async () => {
      await t.close();
      rmSync(fixtures, { recursive: true, force: true });
    });

    it('redacts them from build output, workload logs and their stream, and never logs them', async () => {
      const planted = `planted-${randomBytes(8).toString('hex')}`;
      const pemLine = `MIIB${randomBytes(12).toString('hex')}`;
      const pem = `-----BEGIN KEY-----\n${pemLine}\n-----END KEY-----`;
      const rotated = `rotated-${randomBytes(8).toString('hex')}`;
      // Quotes, a backslash, non-ASCII and a newline: JSON lines hold it escaped.
      const tricky = `q"uo\\te é✓ ${randomBytes(6).toString('hex')}\nsecond-line-${randomBytes(6).toString('hex')}`;
      // Another project's secret: no redaction list of this service names it.
      const foreign = `foreign-${randomBytes(8).toString('hex')}`;
      const needles = [planted, pemLine, rotated, tricky, foreign].flatMap(textForms);
      const bodies: string[] = [];
      const call = async (
        method: 'GET' | 'POST' | 'PUT',
        url: string,
        headers: Record<string, string>,
        payload?: object,
      ) => {
        const response = await t.app.inject({
          method,
          url,
          headers,
          ...(payload === undefined ? {} : { payload }),
        });
        if (!url.endsWith('/value')) bodies.push(response.body);
        return response;
      };

      const { owner, slug } = await seedProject(t.app);
      const other = await seedProject(t.app);
      await call('PUT', `/v1/projects/${other.slug}/secrets/FOREIGN`, other.owner.headers, {
        value: foreign,
      });
      const repo = await createRepo(fixtures, {
        'package.json': JSON.stringify({
          name: 'leaky',
          version: '1.0.0',
          scripts: {
            build: "node -e \"console.log(require('fs').readFileSync('committed.env', 'utf8'))\"",
            start: 'node server.js',
          },
        }),
        'committed.env': `LEAKY=${planted}\nFOREIGN=${foreign}\n`,
        'server.js': SERVER,
      });
      const service = await call('POST', `/v1/projects/${slug}/services`, owner.headers, {
        name: 'leaky',
        gitUrl: repo.path,
        runtime: { healthCheckPath: '/healthz' },
      });
      const serviceId = service.json<{ id: string }>().id;
      await call('PUT', `/v1/projects/${slug}/secrets/LEAKY`, owner.headers, { value: planted });
      await call('PUT', `/v1/services/${serviceId}/secrets/PEM`, owner.headers, { value: pem });
      await call('PUT', `/v1/services/${serviceId}/secrets/TRICKY`, owner.headers, {
        value: tricky,
      });

      // Arbitrary fields: a client's request id (in every log line of its request), a path
      // echoed into an error message and the request log, a body field a handler logs.
      const echoed = await call('GET', `/v1/projects/${slug}`, {
        ...owner.headers,
        'x-request-id': planted,
      });
      assert.equal(echoed.statusCode, 200);
      const unknown = await call('GET', `/v1/no-such/${foreign}`, owner.headers);
      assert.equal(unknown.statusCode, 404);
      assert.match(unknown.json<{ error: { message: string } }>().error.message, /\[REDACTED\]/);
      t.deps.logger.info(
        { req: { headers: { 'x-note': tricky } }, body: { note: `see ${foreign}` } },
        'request body echoed',
      );
      assert.ok(t.logs.some((line) => line.includes('request body echoed')));

      // Build: the repository prints a committed copy of the secret.
      const build = (
        await call('POST', `/v1/services/${serviceId}/builds`, owner.headers, {})
      ).json<{ id: string }>();
      await eventually(
        'build finished',
        async () => {
          const status = (await call('GET', `/v1/builds/${build.id}`, owner.headers)).json<{
            status: string;
          }>().status;
          return status === 'succeeded' || status === 'failed' ? status : undefined;
        },
        60_000,
      ).then((status) => assert.equal(status, 'succeeded'));
      const buildLog = await call('GET', `/v1/builds/${build.id}/logs`, owner.headers);
      assert.match(buildLog.body, /LEAKY=\[REDACTED\]/);
      assert.match(buildLog.body, /FOREIGN=\[REDACTED\]/);
      bodies.push(
        await readStream(`${base}/v1/builds/${build.id}/logs?follow=true`, owner.headers, (text) =>
          text.includes('event: end'),
        ),
      );

      // Deploy: the app prints both secrets at boot, one of them across lines.
      const deployment = (
        await call('POST', `/v1/services/${serviceId}/deployments`, owner.headers, {
          environment: 'production',
        })
      ).json<{ id: string }>();
      await eventually('deployment live', async () =>
        (await call('GET', `/v1/deployments/${deployment.id}`, owner.headers)).json<{
          status: string;
        }>().status === 'live'
          ? true
          : undefined,
      );
      const workloadLog = await eventually('boot lines logged', async () => {
        const logs = await call('GET', `/v1/deployments/${deployment.id}/logs`, owner.headers);
        return logs.body.includes('booting with') && logs.body.includes('FOREIGN=')
          ? logs.body
          : undefined;
      });
      assert.match(workloadLog, /booting with LEAKY=\[REDACTED\]/);
      assert.match(workloadLog, /tricky is \[REDACTED\]/);
      assert.match(workloadLog, /FOREIGN=\[REDACTED\]/);
      const followed = await readStream(
        `${base}/v1/deployments/${deployment.id}/logs?follow=true`,
        owner.headers,
        (text) => text.includes('FOREIGN='),
      );
      assert.match(followed, /booting with LEAKY=\[REDACTED\]/);
      assert.match(followed, /FOREIGN=\[REDACTED\]/);
      bodies.push(followed);

      // Rotate to another planted value: the new instances' output is redacted too.
      const rotationId = await rotate(t.app, owner.headers, `/v1/projects/${slug}/secrets/LEAKY`, {
        value: rotated,
      });
      const view = await settled(t.app, owner.headers, rotationId);
      assert.equal(view.state, 'succeeded', view.failureReason ?? '');
      const newId = view.targets[0]?.newDeploymentId ?? '';
      await eventually('new boot line logged', async () => {
        const logs = await call('GET', `/v1/deployments/${newId}/logs`, owner.headers);
        return logs.body.includes('booting with') ? true : undefined;
      });
      bodies.push((await call('GET', `/v1/secret-rotations/${rotationId}`, owner.headers)).body);

      // The values are readable where asked for, and nowhere else.
      const read = await t.app.inject({
        url: `/v1/projects/${slug}/secrets/LEAKY/value`,
        headers: owner.headers,
      });
      assert.equal(read.json().value, rotated);

      const runtimeLogs = join(t.dataDir, 'runtime', 'logs');
      const files = readdirSync(runtimeLogs).map((name) =>
        readFileSync(join(runtimeLogs, name), 'utf8'),
      );
      const jobs = await sql<{ data: string }>`SELECT data::text AS data FROM pgboss.job`.execute(
        t.deps.database.db,
      );
      const buildLines = await sql<{ line: string }>`SELECT line FROM build_logs`.execute(
        t.deps.database.db,
      );
      const haystacks = {
        logger: t.logs,
        responses: bodies,
        workloadLogFiles: files,
        buildLogRows: buildLines.rows.map((row) => row.line),
        jobPayloads: jobs.rows.map((row) => row.data),
      };
      for (const [where, texts] of Object.entries(haystacks)) {
        for (const needle of needles) {
          assert.ok(
            !texts.some((text) => text.includes(needle)),
            `a planted value reached ${where}`,
          );
        }
      }
      assert.ok(t.logs.length > 50 && files.length >= 2, 'the search covered real output');
      assert.ok(
        t.logs.some((line) => line.includes(`"reqId":"${REDACTED}"`)),
        'the planted request id was logged, scrubbed',
      );
    });
  });
}
