import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Set by the router itself; what a client sends under these names is replaced. */
const FORWARDING = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
]);

const REQUEST_ID = /^[\w.:@-]{1,128}$/;

/** The client's request id when it is sane, otherwise a new one. */
export function requestIdOf(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id'];
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** Raw header pairs without hop-by-hop ones, including those the Connection header names. */
export function withoutHopByHop(rawHeaders: string[], alsoDrop?: ReadonlySet<string>): string[] {
  const named = new Set<string>();
  for (let index = 0; index < rawHeaders.length; index += 2) {
    if (rawHeaders[index]?.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[index + 1] ?? '').split(','))
      named.add(token.trim().toLowerCase());
  }

  const kept: string[] = [];
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || alsoDrop?.has(lower)) continue;
    kept.push(name, rawHeaders[index + 1] ?? '');
  }
  return kept;
}

export interface ForwardingInput {
  requestId: string;
  /** Keep and extend X-Forwarded-* from the client (only behind another trusted proxy). */
  trustForwarded: boolean;
}

/** End-to-end request headers plus X-Forwarded-For/Proto/Host and X-Request-Id. */
export function upstreamRequestHeaders(request: IncomingMessage, input: ForwardingInput): string[] {
  const headers = withoutHopByHop(request.rawHeaders, FORWARDING);
  const client = clientAddress(request);
  const host = request.headers.host ?? '';
  const prior = input.trustForwarded ? request.headers : {};

  const forwardedFor = prior['x-forwarded-for'] ? `${prior['x-forwarded-for']}, ${client}` : client;
  headers.push('X-Forwarded-For', forwardedFor);
  headers.push('X-Forwarded-Proto', firstValue(prior['x-forwarded-proto']) ?? 'http');
  headers.push('X-Forwarded-Host', firstValue(prior['x-forwarded-host']) ?? host);
  headers.push('X-Request-Id', input.requestId);

  // Node frames the body itself, but only announces chunking for a body it was told about.
  if (request.headers['transfer-encoding'] !== undefined)
    headers.push('Transfer-Encoding', 'chunked');
  return headers;
}

/** End-to-end response headers, with the request id echoed when the upstream set none. */
export function clientResponseHeaders(rawHeaders: string[], requestId: string): string[] {
  const headers = withoutHopByHop(rawHeaders);
  const hasRequestId = headers.some(
    (name, index) => index % 2 === 0 && name.toLowerCase() === 'x-request-id',
  );
  if (!hasRequestId) headers.push('X-Request-Id', requestId);
  return headers;
}

export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  if (request.headers['transfer-encoding'] !== undefined) return true;
  return length !== undefined && length !== '0';
}

function clientAddress(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
