import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestApp, fakeResolver, signUp, type TestApp } from '../../test/support/app.js';
import { testBackends } from '../../test/support/database.js';
import { waitUntil } from '../../test/support/wait.js';
import { backoffMs } from './sink-delivery.js';
import { checkSignature, signatureFor } from './sink-signature.js';
import { createSinkService, openCredentials } from './sink.service.js';
import { findSink } from './sink.repository.js';
import { FlakySink, type Behaviour } from './test-support/flaky-sink.js';

type User = Awaited<ReturnType<typeof signUp>>;
const TIMEOUT_MS = 800;

/** Ids of the events queued for a sink, in chain order: what it must receive. */
async function expectedFor(t: TestApp, sinkId: string): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    select e.id from audit_outbox o join audit_events e on e.seq = o.event_seq
    where o.sink_id = ${sinkId} order by o.event_seq`.execute(t.deps.database.db);
  return rows.map((row) => row.id);
}

async function outboxStates(t: TestApp, sinkId: string): Promise<Record<string, number>> {
  const { rows } = await sql<{ state: string; count: number }>`
    select state, count(*)::int as count from audit_outbox where sink_id = ${sinkId} group by state`.execute(
    t.deps.database.db,
  );
  return Object.fromEntries(rows.map((row) => [row.state, Number(row.count)]));
}

for (const backend of testBackends()) {
  describe(`compliance sinks on ${backend}`, () => {
    let t: TestApp;
    let admin: User;
    const sinks: FlakySink[] = [];

    const addSink = async (sink: FlakySink, body: Record<string, unknown>) => {
      await sink.start();
      sinks.push(sink);
      const response = await t.app.inject({
        method: 'POST',
        url: '/v1/audit-sinks',
        headers: admin.headers,
        payload: { url: sink.url, ...body },
      });
      assert.equal(response.statusCode, 201, response.body);
      const created = response.json<{ id: string; signingSecret: string }>();
      sink.secret = created.signingSecret;
      return created.id;
    };
    const generateEvents = async (count: number, slug: string) => {
      for (let index = 0; index < count; index++) {
        const response = await t.app.inject({
          method: 'PATCH',
          url: `/v1/projects/${slug}`,
          headers: admin.headers,
          payload: { name: `Name ${index}` },
        });
        assert.equal(response.statusCode, 200);
      }
      await t.deps.audit.writer.flush();
    };
    const deliverUntil = async (what: string, done: () => Promise<boolean>) =>
      waitUntil(
        what,
        async () => {
          await t.deps.audit.deliverer.deliverDue();
          return done();
        },
        { timeoutMs: 40_000, intervalMs: 25 },
      );

    before(async () => {
      t = await createTestApp(backend, {
        AUDIT_SINK_ALLOW_HTTP: 'true',
        AUDIT_SINK_ALLOW_PRIVATE_NETWORKS: 'true',
        AUDIT_SINK_TIMEOUT_MS: String(TIMEOUT_MS),
        AUDIT_SINK_BACKOFF_BASE_MS: '10',
        AUDIT_SINK_BACKOFF_MAX_MS: '80',
      });
      admin = await signUp(t.app);
    });
    after(async () => {
      for (const sink of sinks) await sink.close();
      await t.close();
    });

    it('delivers every event exactly once and in order to each sink through drops, 503, 429 and slow answers', async () => {
      // Each sink misbehaves on its own schedule; every fourth request or so goes through.
      const webhookScript: Behaviour[] = [
        'drop',
        'ok',
        '503',
        '429',
        'ok',
        'slow',
        'drop',
        'ok',
        '503',
        'ok',
      ];
      const vantaScript: Behaviour[] = [
        '503',
        'drop',
        'ok',
        'slow',
        'ok',
        '503',
        '503',
        'ok',
        'drop',
        'ok',
      ];
      const webhook = new FlakySink(
        'webhook',
        (index) => webhookScript[index] ?? 'ok',
        TIMEOUT_MS * 3,
      );
      const vanta = new FlakySink(
        'vanta',
        (index) => vantaScript[index] ?? (index % 3 === 0 ? '503' : 'ok'),
        TIMEOUT_MS * 3,
      );
      const webhookId = await addSink(webhook, {
        name: 'evidence-webhook',
        format: 'webhook',
        batchSize: 4,
      });
      const vantaId = await addSink(vanta, {
        name: 'evidence-vanta',
        format: 'vanta',
        targetId: 'res-123',
        bearerToken: 'vanta-token',
        batchSize: 3,
      });
      const slug = `sinks-${Date.now().toString(36)}`;
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: admin.headers,
        payload: { name: 'Sinks', slug },
      });
      await generateEvents(20, slug);

      const expectedWebhook = await expectedFor(t, webhookId);
      const expectedVanta = await expectedFor(t, vantaId);
      assert.ok(expectedWebhook.length >= 20);
      await deliverUntil(
        'both sinks delivered',
        async () =>
          (await outboxStates(t, webhookId))['pending'] === undefined &&
          (await outboxStates(t, vantaId))['pending'] === undefined,
      );

      assert.deepEqual(
        webhook.accepted,
        expectedWebhook,
        'webhook: every event once, in chain order',
      );
      assert.deepEqual(vanta.accepted, expectedVanta, 'vanta: every event once, in chain order');
      assert.deepEqual(await outboxStates(t, webhookId), { delivered: expectedWebhook.length });
      assert.equal(webhook.badSignatures + vanta.badSignatures, 0);
      const seen = new Set(webhook.requests.map((request) => request.behaviour));
      for (const behaviour of ['drop', '503', '429', 'slow', 'ok'] as const)
        assert.ok(seen.has(behaviour), `webhook saw ${behaviour}`);

      // The request after the 429 waited for its Retry-After (1 s), not the 10 ms backoff.
      const index429 = webhook.requests.findIndex((request) => request.behaviour === '429');
      const after429 = webhook.requests[index429 + 1];
      assert.ok(
        after429 !== undefined && after429.at - (webhook.requests[index429]?.at ?? 0) >= 950,
        'Retry-After honoured',
      );
    });

    it('dead-letters at once on a 4xx, after the last attempt on 5xx, and redelivers on request', async () => {
      let isBroken = true;
      const refusing = new FlakySink('webhook', () => (isBroken ? '400' : 'ok'), TIMEOUT_MS * 3);
      const failing = new FlakySink('drata', () => (isBroken ? '503' : 'ok'), TIMEOUT_MS * 3);
      const refusingId = await addSink(refusing, {
        name: 'refusing',
        format: 'webhook',
        batchSize: 100,
      });
      const failingId = await addSink(failing, {
        name: 'failing',
        format: 'drata',
        targetId: 'conn-1',
        maxAttempts: 3,
        batchSize: 100,
      });
      const slug = `dead-${Date.now().toString(36)}`;
      await t.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: admin.headers,
        payload: { name: 'Dead', slug },
      });
      await generateEvents(3, slug);

      await deliverUntil(
        'both dead',
        async () =>
          (await outboxStates(t, refusingId))['pending'] === undefined &&
          (await outboxStates(t, failingId))['pending'] === undefined,
      );
      assert.equal(refusing.requests.length, 1, 'a 400 is not retried');
      assert.equal(failing.requests.length, 3, 'a 503 is retried up to maxAttempts');
      const details = await t.app.inject({
        url: `/v1/audit-sinks/${failingId}`,
        headers: admin.headers,
      });
      assert.equal(
        details.json<{ deliveries: { dead: number } }>().deliveries.dead,
        (await expectedFor(t, failingId)).length,
      );

      isBroken = false;
      for (const id of [refusingId, failingId]) {
        const redeliver = await t.app.inject({
          method: 'POST',
          url: `/v1/audit-sinks/${id}/redeliver`,
          headers: admin.headers,
          payload: {},
        });
        assert.equal(redeliver.statusCode, 200, redeliver.body);
        assert.ok(redeliver.json<{ requeued: number }>().requeued > 0);
      }
      await deliverUntil(
        'redelivered',
        async () =>
          (await outboxStates(t, refusingId))['dead'] === undefined &&
          (await outboxStates(t, failingId))['dead'] === undefined,
      );
      assert.deepEqual(
        failing.accepted.slice(0, (await expectedFor(t, failingId)).length),
        await expectedFor(t, failingId),
      );
    });

    it('keeps sink credentials encrypted at rest and shows the signing secret once', async () => {
      const sink = new FlakySink('webhook', () => 'ok', TIMEOUT_MS);
      const id = await addSink(sink, {
        name: 'sealed',
        format: 'vanta',
        targetId: 'r',
        bearerToken: 'bearer-plaintext-xyz',
      });
      const row = await findSink(t.deps.database.db, id);
      assert.ok(row !== undefined);
      const stored = Buffer.concat([
        row.credentials_ciphertext,
        row.credentials_wrapped_key,
      ]).toString('latin1');
      assert.doesNotMatch(stored, /bearer-plaintext-xyz/);
      assert.doesNotMatch(stored, new RegExp(sink.secret.slice(6, 30)));
      assert.deepEqual(openCredentials(t.deps.lockbox.keys, row), {
        signingSecret: sink.secret,
        bearerToken: 'bearer-plaintext-xyz',
      });
      const listed = await t.app.inject({ url: '/v1/audit-sinks', headers: admin.headers });
      assert.doesNotMatch(listed.body, /whsec_|bearer-plaintext/);
      const owner = await signUp(t.app);
      const refused = await t.app.inject({ url: '/v1/audit-sinks', headers: owner.headers });
      assert.equal(refused.statusCode, 403);
    });

    it('refuses sink URLs the outbound guard refuses', async () => {
      const guarded = createSinkService({
        db: t.deps.database.db,
        keys: t.deps.lockbox.keys,
        recorder: t.deps.audit.recorder,
        resolver: fakeResolver,
        outbound: { allowPrivateNetworks: false, allowHttp: false },
      });
      const principal = {
        userId: admin.id,
        isInstanceAdmin: true,
        credential: {
          kind: 'session',
          sessionId: admin.id,
          tokenId: admin.id,
          expiresAt: new Date(),
          transport: 'bearer',
        },
      } as const;
      for (const url of [
        'http://github.com/hook',
        'https://internal.example/hook',
        'https://169.254.169.254/latest',
        'https://127.0.0.1/x',
      ]) {
        await assert.rejects(
          guarded.create(principal, { name: `guarded-${url.length}`, format: 'webhook', url }),
          (error: { code?: string }) => {
            assert.equal(error.code, 'OUTBOUND_URL_REJECTED', url);
            return true;
          },
        );
      }
    });
  });
}

describe('delivery signatures and backoff', () => {
  it('signs timestamp and raw body; receivers refuse a changed body, a wrong secret and an old timestamp', () => {
    const secret = 'whsec_test-secret-of-enough-length-000000';
    const body = '{"events":[]}';
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      timestamp: String(timestamp),
      signature: signatureFor(secret, timestamp, body),
    };
    assert.equal(checkSignature(secret, headers, body), 'valid');
    assert.equal(checkSignature(secret, headers, `${body} `), 'mismatch');
    assert.equal(checkSignature(`${secret}x`, headers, body), 'mismatch');
    assert.equal(
      checkSignature(secret, headers, body, { now: new Date((timestamp + 301) * 1000) }),
      'stale',
    );
    assert.equal(
      checkSignature(secret, { timestamp: undefined, signature: headers.signature }, body),
      'missing',
    );
  });

  it('backs off exponentially with jitter up to the cap', () => {
    assert.equal(
      backoffMs(1, 100, 10_000, () => 0),
      50,
    );
    assert.equal(
      backoffMs(1, 100, 10_000, () => 1),
      100,
    );
    assert.equal(
      backoffMs(4, 100, 10_000, () => 1),
      800,
    );
    assert.equal(
      backoffMs(20, 100, 10_000, () => 1),
      10_000,
    );
    const spread = new Set(Array.from({ length: 20 }, () => backoffMs(3, 100, 10_000)));
    assert.ok(spread.size > 1, 'jitter spreads retries');
  });
});
