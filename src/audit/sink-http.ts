import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { AppError } from '../platform/errors.js';
import { checkOutboundUrl, isBlockedAddress, type Resolver } from '../platform/url-guard.js';

/** What one delivery attempt came to. */
export type AttemptResult =
  | { kind: 'delivered'; status: number }
  | { kind: 'transient'; reason: string; retryAfterMs?: number }
  | { kind: 'permanent'; reason: string };

export interface OutboundSettings {
  allowPrivateNetworks: boolean;
  allowHttp: boolean;
  timeoutMs: number;
  resolver: Resolver;
}

// Connection-level failures worth another try: refused, reset, timed out, unreachable.
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);
const MAX_RETRY_AFTER_MS = 3_600_000;

/** Retry-After as delay-seconds or an HTTP date, in milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d{1,10}$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, date - now), MAX_RETRY_AFTER_MS);
}

/** 2xx delivered; 408, 429 and 5xx worth another try; any other answer will not change. */
export function classifyStatus(status: number, retryAfter: string | undefined): AttemptResult {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  if (status === 429 || status === 408 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return {
      kind: 'transient',
      reason: `HTTP ${status}`,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
  return { kind: 'permanent', reason: `HTTP ${status}` };
}

/**
 * Checks the URL with the outbound guard and picks the address to dial, so the connection
 * goes where the check looked (a DNS answer changing in between cannot redirect it).
 */
async function resolveTarget(
  raw: string,
  settings: OutboundSettings,
): Promise<{ url: URL; address: string | undefined }> {
  const url = await checkOutboundUrl(
    raw,
    { allowPrivateNetworks: settings.allowPrivateNetworks, allowHttp: settings.allowHttp },
    settings.resolver,
  );
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) return { url, address: undefined };
  const addresses = await settings.resolver(host);
  const address = addresses.find(
    (candidate) => settings.allowPrivateNetworks || !isBlockedAddress(candidate),
  );
  if (address === undefined)
    throw new AppError('OUTBOUND_URL_REJECTED', 'the sink host resolves to no allowed address', {
      details: { reason: 'blocked_address' },
    });
  return { url, address };
}

function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address);
  return (_hostname, options, callback) => {
    if (typeof options === 'object' && options.all === true) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

/**
 * POSTs `body` once, with a hard timeout over the whole exchange, never following
 * redirects, and says what came of it. Never throws for network trouble: it becomes a
 * transient result; a URL the guard refuses is permanent.
 */
export async function postOnce(
  raw: string,
  headers: Record<string, string>,
  body: Buffer,
  settings: OutboundSettings,
): Promise<AttemptResult> {
  let target: { url: URL; address: string | undefined };
  try {
    target = await resolveTarget(raw, settings);
  } catch (error) {
    if (error instanceof AppError) return { kind: 'permanent', reason: error.message };
    return {
      kind: 'transient',
      reason: `resolving the sink host failed: ${(error as Error).message}`,
    };
  }
  const { url, address } = target;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;

  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const request = send(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(body.length) },
      agent: false,
      ...(address === undefined ? {} : { lookup: pinnedLookup(address) }),
    });
    const timer = setTimeout(() => {
      request.destroy(
        Object.assign(new Error(`no answer within ${settings.timeoutMs} ms`), {
          code: 'ETIMEDOUT',
        }),
      );
    }, settings.timeoutMs);
    request.on('response', (response: IncomingMessage) => {
      // Drain the body (bounded by the timeout) so the answer is complete before it counts.
      response.resume();
      response.on('end', () =>
        finish(classifyStatus(response.statusCode ?? 0, headerOf(response, 'retry-after'))),
      );
      response.on('error', (error) => finish({ kind: 'transient', reason: describe(error) }));
    });
    request.on('error', (error) => finish({ kind: 'transient', reason: describe(error) }));
    request.end(body);
  });
}

function headerOf(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  const known = code !== undefined && TRANSIENT_CODES.has(code);
  return `${known ? code : 'connection failed'}: ${error.message}`.slice(0, 300);
}
