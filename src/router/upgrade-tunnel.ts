import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';

import type { ErrorPage } from './error-page.js';
import type { RouteTarget } from './route-table.js';

export interface TunnelInput {
  request: IncomingMessage;
  client: Duplex;
  /** Bytes the client sent after its request head. */
  head: Buffer;
  target: RouteTarget;
  /** Request headers for the upstream, already forwarded and without hop-by-hop ones. */
  headers: string[];
  connectTimeoutMs: number;
}

/**
 * Passes an HTTP upgrade (a websocket, typically) through to `target`: replays the request
 * head, then copies bytes both ways until either side closes. Resolves once the tunnel is
 * open; rejects, leaving the client untouched, when the target cannot be reached.
 */
export function openUpgradeTunnel(input: TunnelInput): Promise<net.Socket> {
  const { request, client, head, target } = input;
  return new Promise((resolve, reject) => {
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.setTimeout(input.connectTimeoutMs, () =>
      upstream.destroy(new Error('upstream connect timed out')),
    );
    upstream.once('error', reject);

    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.off('error', reject);
      upstream.write(requestHead(request, input.headers));
      if (head.length > 0) upstream.write(head);

      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.pipe(client);
      client.pipe(upstream);
      upstream.once('close', () => client.destroy());
      client.once('close', () => upstream.destroy());
      resolve(upstream);
    });
  });
}

function requestHead(request: IncomingMessage, headers: string[]): string {
  const lines = [`${request.method ?? 'GET'} ${request.url ?? '/'} HTTP/1.1`];
  for (let index = 0; index + 1 < headers.length; index += 2) {
    lines.push(`${headers[index]}: ${headers[index + 1]}`);
  }
  lines.push('Connection: Upgrade', `Upgrade: ${request.headers.upgrade ?? ''}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Answers an upgrade request with a plain HTTP response and closes the connection. */
export function rejectUpgrade(client: Duplex, page: ErrorPage): void {
  const lines = [`HTTP/1.1 ${page.status} ${STATUS_CODES[page.status] ?? 'Error'}`];
  for (const [name, value] of Object.entries(page.headers)) lines.push(`${name}: ${value}`);
  lines.push('Connection: close');
  client.end(`${lines.join('\r\n')}\r\n\r\n${page.body}`);
}
