import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { createLocalRuntime } from '../runtime/local/local-runtime.js';
import { createTestBench, httpRequest } from '../runtime/local/test-support/test-apps.js';
import type { TestBench } from '../runtime/local/test-support/test-apps.js';
import { createRouter } from './router.js';
import type { Router } from './router.js';

const HOST = 'web.staging.shop.localhost';

interface Upstream {
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

async function startUpstream(
  handler: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<Upstream> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    server,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Echoes what arrived: method, url, headers and the body's length. */
function echo(name: string) {
  return (request: IncomingMessage, response: ServerResponse): void => {
    let length = 0;
    request.on('data', (chunk: Buffer) => (length += chunk.length));
    request.on('end', () => {
      response.setHeader('content-type', 'application/json');
      response.end(
        JSON.stringify({ name, headers: request.headers, method: request.method, length }),
      );
    });
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const upstream = await startUpstream(() => undefined);
  await upstream.close();
  return upstream.port;
}

describe('router', () => {
  let bench: TestBench;
  let router: Router;
  let port: number;
  const upstreams: Upstream[] = [];

  const request = (options: Parameters<typeof httpRequest>[1] & { host?: string } = {}) =>
    httpRequest(port, { ...options, headers: { host: options.host ?? HOST, ...options.headers } });
  const upstream = async (
    handler: (request: IncomingMessage, response: ServerResponse) => void,
  ): Promise<Upstream> => {
    const started = await startUpstream(handler);
    upstreams.push(started);
    return started;
  };

  before(async () => {
    bench = await createTestBench();
    router = createRouter({
      logger: bench.logger,
      port: 0,
      host: '127.0.0.1',
      upstreamTimeoutMs: 1_000,
    });
    port = await router.listen();
  });

  after(async () => {
    await router.close();
    await Promise.all(upstreams.map((started) => started.close()));
    await bench.cleanup();
  });

  it('spreads requests round robin across two instances of a workload', async () => {
    const runtime = createLocalRuntime({ stateDir: bench.stateDir, logger: bench.logger });
    try {
      const spec = bench.spec({ instances: 2 });
      await runtime.start(spec, { deadlineMs: 10_000, signal: new AbortController().signal });
      const endpoints = runtime.endpoints(spec.deploymentId);
      router.setRoute(HOST, endpoints);

      const answers = [];
      for (let index = 0; index < 4; index++) answers.push(JSON.parse((await request()).body).port);

      const [first, second] = endpoints.map((endpoint) => String(endpoint.port));
      assert.deepEqual(answers, [first, second, first, second]);
      assert.deepEqual(router.routes(), [{ hostname: HOST, targets: endpoints }]);
    } finally {
      await runtime.close();
    }
  });

  it('sets X-Forwarded-* and X-Request-Id and drops hop-by-hop headers both ways', async () => {
    const target = await upstream((incoming, response) => {
      response.writeHead(200, {
        connection: 'X-Upstream-Hop',
        'x-upstream-hop': 'secret',
        'content-type': 'application/json',
      });
      response.end(JSON.stringify(incoming.headers));
    });
    router.setRoute(HOST, [{ host: '127.0.0.1', port: target.port }]);

    const answer = await request({
      host: `WEB.Staging.Shop.localhost:${port}`,
      headers: {
        'x-forwarded-for': '203.0.113.9',
        connection: 'X-Client-Hop',
        'x-client-hop': '1',
        'proxy-authorization': 'Basic c2VjcmV0',
        te: 'trailers',
        'x-kept': 'yes',
      },
    });
    const seen = JSON.parse(answer.body);

    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], `WEB.Staging.Shop.localhost:${port}`);
    assert.match(seen['x-request-id'], /^[0-9a-f-]{36}$/);
    assert.equal(answer.headers['x-request-id'], seen['x-request-id']);
    assert.equal(seen['x-kept'], 'yes');
    for (const name of ['x-client-hop', 'proxy-authorization', 'te'])
      assert.equal(seen[name], undefined, name);
    assert.equal(answer.headers['x-upstream-hop'], undefined);

    const kept = await request({ headers: { 'x-request-id': 'req-from-client-42' } });
    assert.equal(JSON.parse(kept.body)['x-request-id'], 'req-from-client-42');
    assert.equal(kept.headers['x-request-id'], 'req-from-client-42');
  });

  it('streams bodies both ways without buffering them', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const target = await upstream((incoming, response) => {
      if (incoming.url === '/echo') return void incoming.pipe(response);
      response.write('first part;');
      void released.then(() => response.end('second part'));
    });
    router.setRoute(HOST, [{ host: '127.0.0.1', port: target.port }]);

    const body = randomBytes(4 * 1024 * 1024);
    const hash = await new Promise<string>((resolve, reject) => {
      const outgoing = http.request(
        { port, host: '127.0.0.1', method: 'POST', path: '/echo', headers: { host: HOST } },
        (answer) => {
          const digest = createHash('sha256');
          answer.on('data', (chunk: Buffer) => digest.update(chunk));
          answer.on('end', () => resolve(digest.digest('hex')));
        },
      );
      outgoing.on('error', reject);
      for (let offset = 0; offset < body.length; offset += 64 * 1024)
        outgoing.write(body.subarray(offset, offset + 64 * 1024));
      outgoing.end();
    });
    assert.equal(hash, createHash('sha256').update(body).digest('hex'));

    // The upstream finishes only after the client has seen its first part.
    const text = await new Promise<string>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', headers: { host: HOST } }, (answer) => {
          let received = '';
          answer.on('data', (chunk: Buffer) => {
            received += chunk.toString();
            if (received === 'first part;') release();
          });
          answer.on('end', () => resolve(received));
        })
        .on('error', reject);
    });
    assert.equal(text, 'first part;second part');
  });

  it('passes a websocket upgrade through and echoes frames', async () => {
    const target = await upstream(() => undefined);
    target.server.on('upgrade', (incoming: IncomingMessage, socket: net.Socket) => {
      const key = String(incoming.headers['sec-websocket-key']);
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nX-Seen-Forwarded-For: ${String(incoming.headers['x-forwarded-for'])}\r\n\r\n`,
      );
      socket.on('data', (frame: Buffer) => socket.write(encodeFrame(decodeFrame(frame))));
      socket.on('end', () => socket.end());
    });
    router.setRoute(HOST, [{ host: '127.0.0.1', port: target.port }]);

    const socket = net.connect(port, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET /socket HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const handshake = await readUntil(socket, (data) => data.includes('\r\n\r\n'));
    assert.match(handshake.toString(), /^HTTP\/1\.1 101 /);
    assert.match(
      handshake.toString(),
      new RegExp(`Sec-WebSocket-Accept: ${escapeRegExp(acceptKey(key))}`),
    );
    assert.match(handshake.toString(), /X-Seen-Forwarded-For: 127\.0\.0\.1/);

    socket.write(encodeFrame('hello through the router', true));
    const reply = await readUntil(
      socket,
      (data) => data.length >= 2 && data.length >= 2 + (data[1] ?? 0),
    );
    assert.equal(decodeFrame(reply), 'hello through the router');
    socket.destroy();
  });

  it('answers 404 for an unknown host, 503 without healthy targets and 502 on a refused connection', async () => {
    const unknown = await request({ host: 'nobody.localhost' });
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body).error.code, 'NOT_FOUND');
    assert.equal(JSON.parse(unknown.body).error.requestId, unknown.headers['x-request-id']);

    router.setRoute(HOST, []);
    const empty = await request({ headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.equal(empty.status, 503);
    assert.match(String(empty.headers['content-type']), /^text\/html/);
    assert.match(empty.body, /<h1>503 Service Unavailable<\/h1>/);

    router.setRoute(HOST, [{ host: '127.0.0.1', port: await closedPort() }]);
    const refused = await request();
    assert.equal(refused.status, 502);
    assert.equal(JSON.parse(refused.body).error.code, 'DEPENDENCY_UNAVAILABLE');

    router.removeRoute(HOST);
    assert.equal((await request()).status, 404);
  });

  it('retries an idempotent request on the next target after a refused connection, not a POST', async () => {
    const live = await upstream(echo('live'));
    router.setRoute(HOST, [
      { host: '127.0.0.1', port: await closedPort() },
      { host: '127.0.0.1', port: live.port },
    ]);

    const gets = await Promise.all([1, 2, 3, 4].map(() => request()));
    assert.deepEqual(
      gets.map((answer) => answer.status),
      [200, 200, 200, 200],
    );

    const posts = [];
    for (let index = 0; index < 2; index++)
      posts.push((await request({ method: 'POST', body: 'x' })).status);
    assert.deepEqual(posts.sort(), [200, 502]);
  });

  it('answers 504 when the upstream stays silent past the timeout', async () => {
    const silent = await upstream(() => undefined);
    router.setRoute(HOST, [{ host: '127.0.0.1', port: silent.port }]);
    const startedAt = Date.now();

    const answer = await request();

    assert.equal(answer.status, 504);
    assert.ok(Date.now() - startedAt >= 950);
    silent.server.closeAllConnections();
  });

  it('swaps targets under continuous requests without a single failure', async () => {
    const delayed = (name: string) => (incoming: IncomingMessage, response: ServerResponse) =>
      setTimeout(() => echo(name)(incoming, response), 5);
    const blue = await upstream(delayed('blue'));
    const green = await upstream(delayed('green'));
    router.setRoute(HOST, [{ host: '127.0.0.1', port: blue.port }]);

    /** Who answered each request, and when the request was sent. */
    const results: Array<{ name: string; sentAt: number } | Error> = [];
    let isRunning = true;
    const client = async (): Promise<void> => {
      while (isRunning) {
        const sentAt = Date.now();
        const answer = await request().catch((error: Error) => error);
        if (answer instanceof Error) results.push(answer);
        else if (answer.status !== 200) results.push(new Error(`status ${answer.status}`));
        else results.push({ name: JSON.parse(answer.body).name, sentAt });
      }
    };
    const clients = [client(), client(), client(), client()];

    let swappedAt = 0;
    let closedAt = 0;
    try {
      await waitForCount(results, 40);
      router.setRoute(HOST, [{ host: '127.0.0.1', port: green.port }]);
      swappedAt = Date.now();
      await blue.close(); // finishes what blue still serves, then stops it for good
      closedAt = Date.now();
      await waitForCount(results, results.length + 40);
    } finally {
      isRunning = false;
      await Promise.all(clients);
    }

    assert.deepEqual(
      results.filter((result) => result instanceof Error),
      [],
    );
    const answered = results.flatMap((result) => (result instanceof Error ? [] : [result]));
    assert.ok(answered.some((result) => result.name === 'blue'));
    const sentAfterSwap = answered.filter((result) => result.sentAt > swappedAt);
    assert.ok(sentAfterSwap.length >= 40);
    assert.ok(sentAfterSwap.every((result) => result.name === 'green'));
    // Without closing its pooled connections the router would hold blue open for seconds.
    assert.ok(closedAt - swappedAt < 3_000, 'the router lets go of the old target at once');
  });
});

describe('router close', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A router in front of an upstream that tells when a request arrived and holds it. */
  async function setup(closeTimeoutMs: number, answerAfterMs?: number) {
    const bench = await createTestBench();
    let arrived: () => void = () => undefined;
    const hasArrived = new Promise<void>((resolve) => (arrived = resolve));
    const upstream = await startUpstream((incoming, response) => {
      if (incoming.url === '/fast') return void response.end('done');
      arrived();
      if (answerAfterMs !== undefined) setTimeout(() => response.end('done'), answerAfterMs);
    });
    const router = createRouter({
      logger: bench.logger,
      port: 0,
      host: '127.0.0.1',
      closeTimeoutMs,
    });
    const port = await router.listen();
    router.setRoute(HOST, [{ host: '127.0.0.1', port: upstream.port }]);
    cleanups.push(async () => {
      await router.close();
      upstream.server.closeAllConnections();
      await upstream.close();
      await bench.cleanup();
    });
    return { router, port, hasArrived };
  }

  it('waits for requests in flight and closes idle keep-alive connections', async () => {
    const { router, port, hasArrived } = await setup(5_000, 300);
    const idle = net.connect(port, '127.0.0.1');
    idle.write(`GET /fast HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await readUntil(idle, (data) => data.toString().endsWith('done'));
    const idleClosed = new Promise((resolve) => idle.once('close', resolve));

    const inFlight = httpRequest(port, { headers: { host: HOST } });
    await hasArrived;
    await router.close();

    assert.equal((await inFlight).body, 'done');
    await idleClosed;
  });

  it('cuts off requests still running at its deadline', async () => {
    const { router, port, hasArrived } = await setup(200);
    const stuck = httpRequest(port, { headers: { host: HOST } }).catch((error: Error) => error);
    await hasArrived;
    const startedAt = Date.now();

    await router.close();

    assert.ok(Date.now() - startedAt < 2_000);
    assert.ok((await stuck) instanceof Error);
  });
});

async function waitForCount(results: unknown[], count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (results.length < count) {
    if (Date.now() > deadline)
      throw new Error(`only ${results.length} of ${count} requests finished`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function readUntil(socket: net.Socket, isComplete: (data: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      data = Buffer.concat([data, chunk]);
      if (!isComplete(data)) return;
      socket.off('data', onData);
      resolve(data);
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

function acceptKey(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** A single final text frame with a payload under 126 bytes; clients must mask. */
function encodeFrame(text: string, isMasked = false): Buffer {
  const payload = Buffer.from(text);
  if (!isMasked) return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
  const mask = randomBytes(4);
  const masked = payload.map((byte, index) => byte ^ (mask[index % 4] ?? 0));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

function decodeFrame(frame: Buffer): string {
  const length = (frame[1] ?? 0) & 0x7f;
  const isMasked = ((frame[1] ?? 0) & 0x80) !== 0;
  if (!isMasked) return frame.subarray(2, 2 + length).toString();
  const mask = frame.subarray(2, 6);
  return Buffer.from(
    frame.subarray(6, 6 + length).map((byte, index) => byte ^ (mask[index % 4] ?? 0)),
  ).toString();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
