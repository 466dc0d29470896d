import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { SinkFormat } from '../audit.tables.js';
import { eventIdsOf } from '../sink-formats.js';
import { checkSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../sink-signature.js';

/** What the sink does with one request. */
export type Behaviour = 'ok' | 'drop' | '503' | '429' | 'slow' | '400';

/**
 * A compliance sink on 127.0.0.1 that misbehaves on cue: it drops connections, answers 503
 * or 429 (with Retry-After), or answers only after the sender gave up. It counts an event as
 * delivered only when it answered 200 to a sender still listening, and refuses any request
 * whose signature does not verify.
 */
export class FlakySink {
  private server: Server | undefined;
  /** Event ids accepted, in the order they were accepted. */
  readonly accepted: string[] = [];
  readonly requests: Array<{ at: number; behaviour: Behaviour }> = [];
  badSignatures = 0;
  url = '';
  secret = '';

  constructor(
    private readonly format: SinkFormat,
    private readonly script: (index: number) => Behaviour,
    private readonly slowMs: number,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (address === null || typeof address !== 'object') throw new Error('no address');
    this.url = `http://127.0.0.1:${address.port}/evidence`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server === undefined ? resolve() : this.server.close(() => resolve()),
    );
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const behaviour = this.script(this.requests.length);
    this.requests.push({ at: Date.now(), behaviour });
    if (behaviour === 'drop') {
      request.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const check = checkSignature(
      this.secret,
      {
        timestamp: header(request, TIMESTAMP_HEADER),
        signature: header(request, SIGNATURE_HEADER),
      },
      body,
    );
    if (check !== 'valid') {
      this.badSignatures += 1;
      response.writeHead(401).end();
      return;
    }
    if (behaviour === '503') return void response.writeHead(503).end('busy');
    if (behaviour === '400') return void response.writeHead(400).end('bad');
    if (behaviour === '429')
      return void response.writeHead(429, { 'retry-after': '1' }).end('slow down');
    if (behaviour === 'slow') await new Promise((resolve) => setTimeout(resolve, this.slowMs));
    if (request.socket.destroyed) return;
    this.accepted.push(...eventIdsOf(this.format, JSON.parse(body.toString('utf8'))));
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
