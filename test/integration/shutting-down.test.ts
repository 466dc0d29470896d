import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { createTestApp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import { waitUntil } from '../support/wait.js';

// How the app closes does not depend on the database; one backend is enough.
const backend = testBackends().includes('postgres') ? 'postgres' : 'pglite';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits what a socket received into its HTTP/1.1 responses (bodies by Content-Length). */
function parseResponses(raw: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd === -1) break;
    const [statusLine = '', ...lines] = rest.slice(0, headEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = headEnd + 4;
    responses.push({
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: rest.slice(bodyStart, bodyStart + length),
    });
    rest = rest.slice(bodyStart + length);
  }
  return responses;
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(port, '127.0.0.1');
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', () => resolve(true));
  });
}

describe(`requests arriving while the app closes, on ${backend}`, () => {
  let t: TestApp;
  let entered: () => void = () => undefined;
  let release: () => void = () => undefined;
  const isEntered = new Promise<void>((resolve) => (entered = resolve));
  const isReleased = new Promise<void>((resolve) => (release = resolve));

  before(async () => {
    t = await createTestApp(backend, {}, (app) => {
      // A request that stays in flight until the test lets it finish.
      app.get('/test/slow', async () => {
        entered();
        await isReleased;
        return { finished: true };
      });
    });
  });
  after(async () => {
    release();
    await t.close();
  });

  it('answers 503 SHUTTING_DOWN in the envelope with Connection: close, and finishes the request in flight', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    const { port } = address;

    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    const ended = once(socket, 'close');
    socket.write('GET /test/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await isEntered;

    const closing = t.app.close();
    // The listening socket is closed once close() has begun; the kept-alive one stays open.
    await waitUntil('the port to close', () => connectionRefused(port), { timeoutMs: 5_000 });
    let isLateSeen = false;
    t.app.server.on('request', (request: IncomingMessage) => {
      if (request.headers['x-request-id'] === 'late-request-1') isLateSeen = true;
    });
    socket.write(
      'GET /v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: late-request-1\r\n\r\n',
    );
    // The late request is answered in order, after the one in flight.
    await waitUntil('the late request to arrive', async () => isLateSeen, { timeoutMs: 5_000 });
    release();
    await ended;
    await closing;

    const [first, second, ...others] = parseResponses(received);
    assert.equal(others.length, 0, received);
    assert.equal(first?.status, 200, received);
    assert.deepEqual(JSON.parse(first?.body ?? ''), { finished: true });
    assert.ok(second !== undefined, `no answer to the late request: ${received}`);
    assert.equal(second.status, 503, received);
    assert.equal(second.headers['connection'], 'close');
    assert.equal(second.headers['retry-after'], '1');
    assert.equal(second.headers['x-request-id'], 'late-request-1');
    assert.equal(second.headers['x-content-type-options'], 'nosniff');
    assert.match(second.headers['content-type'] ?? '', /^application\/json/);
    const body = JSON.parse(second.body) as { error: { code: string; requestId: string } };
    assert.equal(body.error.code, 'SHUTTING_DOWN');
    assert.equal(body.error.requestId, 'late-request-1');
  });
});
