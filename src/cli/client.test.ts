import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApiClient,
  ApiError,
  ApiUnreachableError,
  parseEventStream,
  type ServerSentEvent,
} from './client.js';

async function collect(chunks: string[]): Promise<ServerSentEvent[]> {
  const events: ServerSentEvent[] = [];
  async function* source() {
    yield* chunks;
  }
  for await (const event of parseEventStream(source())) events.push(event);
  return events;
}

describe('parseEventStream', () => {
  it('reads events split across chunks, with CRLF, comments and multi-line data', async () => {
    const events = await collect([
      ': keep-alive\n\nevent: log\nid: 1\ndata: {"seq":1,"li',
      'ne":"npm ci"}\n\r\nevent: end\r\ndata: first\r\ndata: second\r\n\r\n',
      'data: no trailing blank line',
    ]);
    assert.deepEqual(events, [
      { event: 'log', id: '1', data: { seq: 1, line: 'npm ci' } },
      { event: 'end', id: '1', data: 'first\nsecond' },
    ]);
  });
});

describe('ApiClient against a local server', () => {
  let server: Server;
  let baseUrl: string;
  const seen: Array<{ url: string; authorization: string | undefined; key: string | undefined }> =
    [];

  before(async () => {
    server = createServer((request, response) => {
      seen.push({
        url: request.url ?? '',
        authorization: request.headers.authorization,
        key: request.headers['idempotency-key'] as string | undefined,
      });
      if (request.url === '/v1/me' && request.headers.authorization === 'Bearer fresh') {
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"email":"a@example.com"}');
      } else if (request.url === '/v1/me') {
        const body = {
          error: { code: 'AUTHENTICATION_FAILED', message: 'expired', requestId: 'req-1' },
        };
        response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } else {
        response
          .writeHead(502, { 'content-type': 'text/html', 'x-request-id': 'req-2' })
          .end('<h1>Bad gateway</h1>');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('renews the token once after AUTHENTICATION_FAILED and retries the request', async () => {
    let token = 'stale';
    let renewals = 0;
    const client = new ApiClient(`${baseUrl}/`, {
      token: async () => token,
      renew: async () => {
        renewals += 1;
        token = 'fresh';
        return true;
      },
    });
    assert.deepEqual(await client.me(), { email: 'a@example.com' });
    assert.equal(renewals, 1);
  });

  it('throws the envelope as ApiError, and gives up when renewal is impossible', async () => {
    const client = new ApiClient(baseUrl, { token: async () => 'stale', renew: async () => false });
    await assert.rejects(client.me(), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.deepEqual(
        [error.code, error.status, error.requestId],
        ['AUTHENTICATION_FAILED', 401, 'req-1'],
      );
      return true;
    });
  });

  it('turns a non-envelope answer into HTTP_<status> with the request id header', async () => {
    const client = new ApiClient(baseUrl, { token: async () => 'x' });
    await assert.rejects(client.getBuild('b1'), {
      name: 'ApiError',
      code: 'HTTP_502',
      requestId: 'req-2',
    });
  });

  it('sends a fresh Idempotency-Key with each request that starts work', async () => {
    const client = new ApiClient(baseUrl, { token: async () => 'x' });
    await assert.rejects(client.createBuild('s1', {}));
    await assert.rejects(client.createBuild('s1', {}));
    const keys = seen
      .filter((request) => request.url === '/v1/services/s1/builds')
      .map((request) => request.key);
    assert.equal(keys.length, 2);
    assert.notEqual(keys[0], keys[1]);
  });

  it('reports a refused connection as ApiUnreachableError naming the URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(new ApiClient(`http://127.0.0.1:${port}`).me(), (error: unknown) => {
      assert.ok(error instanceof ApiUnreachableError);
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
      return true;
    });
  });
});
