import http, { STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';

import { renderErrorPage } from './error-page.js';
import type { RouterFailure } from './error-page.js';
import {
  clientResponseHeaders,
  hasBody,
  requestIdOf,
  upstreamRequestHeaders,
} from './proxy-headers.js';
import { RouteTable, hostnameOf, pickTarget, targetKey } from './route-table.js';
import type { RouteSnapshot, RouteTarget } from './route-table.js';
import { openUpgradeTunnel, rejectUpgrade } from './upgrade-tunnel.js';

export type { RouteSnapshot, RouteTarget } from './route-table.js';

export interface RouterOptions {
  logger: Logger;
  port: number;
  host: string;
  /** Longest silence from an upstream, before its answer or within it. */
  upstreamTimeoutMs?: number;
  /** How long close() waits for requests in flight before cutting them off. */
  closeTimeoutMs?: number;
  /** Extend the client's X-Forwarded-* instead of replacing them; only behind a trusted proxy. */
  trustForwardedHeaders?: boolean;
}

export interface Router {
  /**
   * Starts listening; resolves the bound port (useful with port 0). After close() it listens
   * again, with no routes.
   */
  listen(): Promise<number>;
  /** Replaces the hostname's targets at once; an empty list answers 503. */
  setRoute(hostname: string, targets: RouteTarget[]): void;
  removeRoute(hostname: string): void;
  routes(): RouteSnapshot[];
  /**
   * Stops accepting and closes the port, closes idle connections, waits for requests in flight
   * up to a deadline, then forgets every route.
   */
  close(): Promise<void>;
}

const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
// Below the 5 s keep-alive of most servers, so a pooled socket is rarely reused as it closes.
const UPSTREAM_IDLE_MS = 4_000;
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECTION_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** What one proxied request carries from attempt to attempt. */
interface Exchange {
  request: IncomingMessage;
  response: ServerResponse;
  hostname: string;
  requestId: string;
  upstream?: http.ClientRequest;
  hasRetried: boolean;
}

/** The pool of keep-alive connections to the apps behind the router. */
function upstreamAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, timeout: UPSTREAM_IDLE_MS, scheduling: 'lifo' });
}

/** The built-in reverse proxy of the `local` runtime: Host header → round-robin targets. */
export function createRouter(options: RouterOptions): Router {
  return new ReverseProxy(options);
}

class ReverseProxy implements Router {
  readonly #options: RouterOptions;
  readonly #logger: Logger;
  readonly #table = new RouteTable();
  #agent = upstreamAgent();
  readonly #server: http.Server;
  readonly #tunnels = new Set<Duplex>();
  /** Targets no route uses any more: their pooled connections are closed, not reused. */
  readonly #retired = new Set<string>();
  #inFlight = 0;
  #onIdle: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'router' });
    this.#server = http.createServer((request, response) => this.#handle(request, response));
    this.#server.on('upgrade', (request: IncomingMessage, client: Duplex, head: Buffer) => {
      void this.#handleUpgrade(request, client, head);
    });
  }

  async listen(): Promise<number> {
    if (this.#closing !== undefined) {
      // Open again after a close (a process that won the leader lease back): a fresh pool.
      await this.#closing;
      this.#closing = undefined;
      this.#agent = upstreamAgent();
    }
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        const address = this.#server.address();
        resolve(
          typeof address === 'object' && address !== null ? address.port : this.#options.port,
        );
      });
    });
  }

  setRoute(hostname: string, targets: RouteTarget[]): void {
    this.#retire(this.#table.set(hostname, targets));
    this.#logger.info({ hostname, targets: targets.length }, 'route set');
  }

  removeRoute(hostname: string): void {
    this.#retire(this.#table.remove(hostname));
    this.#logger.info({ hostname }, 'route removed');
  }

  /**
   * Closes idle pooled connections to targets that left every route, so that an old instance
   * draining after a swap is not held open by the router's keep-alive.
   */
  #retire(previous: readonly RouteTarget[]): void {
    const routed = this.#table.routedTargets();
    for (const key of routed) this.#retired.delete(key);
    for (const target of previous) {
      if (routed.has(targetKey(target))) continue;
      this.#retired.add(targetKey(target));
      const idle = this.#agent.freeSockets[this.#agent.getName(target)] ?? [];
      for (const socket of idle) socket.destroy();
    }
  }

  routes(): RouteSnapshot[] {
    return this.#table.list();
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    this.#inFlight++;
    response.once('close', () => this.#finished());
    if (this.#closing) response.shouldKeepAlive = false;

    const requestId = requestIdOf(request);
    const hostname = hostnameOf(request.headers.host) ?? '';
    const exchange: Exchange = { request, response, hostname, requestId, hasRetried: false };
    response.once('close', () => {
      if (!response.writableFinished) exchange.upstream?.destroy();
    });

    const entry = this.#table.find(hostname);
    if (!entry) return this.#fail(exchange, 'unknown_host');
    const target = pickTarget(entry);
    if (!target) return this.#fail(exchange, 'no_healthy_target');
    this.#forward(exchange, target);
  }

  #forward(exchange: Exchange, target: RouteTarget): void {
    const { request, requestId } = exchange;
    const upstream = http.request({
      host: target.host,
      port: target.port,
      method: request.method,
      path: request.url,
      headers: upstreamRequestHeaders(request, {
        requestId,
        trustForwarded: this.#options.trustForwardedHeaders ?? false,
      }),
      agent: this.#agent,
      timeout: this.#options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    });
    exchange.upstream = upstream;

    const body = sendBodyOnConnect(request, upstream);

    upstream.once('response', (answer) => this.#relay(exchange, answer, target));
    upstream.once('timeout', () => upstream.destroy(new UpstreamTimeout()));
    let hasFailed = false;
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      // Only the first error of an attempt decides; later ones repeat it.
      if (hasFailed) return;
      hasFailed = true;
      this.#onUpstreamError(exchange, target, error, body.isSent);
    });
  }

  #onUpstreamError(
    exchange: Exchange,
    target: RouteTarget,
    error: NodeJS.ErrnoException,
    isBodySent: boolean,
  ): void {
    const { request, response } = exchange;
    if (response.headersSent || response.destroyed) return void response.destroy();
    if (error instanceof UpstreamTimeout) return this.#fail(exchange, 'upstream_timeout', target);

    const canRetry =
      !exchange.hasRetried &&
      !isBodySent &&
      IDEMPOTENT_METHODS.has(request.method ?? '') &&
      CONNECTION_FAILURES.has(error.code ?? '');
    if (canRetry && this.#retry(exchange, target)) return;
    this.#logger.warn(
      { hostname: exchange.hostname, target, code: error.code, requestId: exchange.requestId },
      'upstream failed',
    );
    this.#fail(exchange, 'upstream_failed', target);
  }

  #retry(exchange: Exchange, failed: RouteTarget): boolean {
    const target = this.#nextTarget(exchange.hostname, failed);
    if (!target) return false;
    exchange.hasRetried = true;
    this.#logger.debug({ hostname: exchange.hostname, failed, target }, 'upstream retried');
    this.#forward(exchange, target);
    return true;
  }

  /** The next target after a failed one, from the current route (it may have been swapped). */
  #nextTarget(hostname: string, failed: RouteTarget): RouteTarget | undefined {
    const entry = this.#table.find(hostname);
    return entry ? pickTarget(entry, failed) : undefined;
  }

  #relay(exchange: Exchange, answer: IncomingMessage, target: RouteTarget): void {
    const { response } = exchange;
    const { socket } = answer;
    answer.once('end', () => {
      if (this.#retired.has(targetKey(target))) socket.destroy();
    });
    const headers = clientResponseHeaders(answer.rawHeaders, exchange.requestId);
    const status = answer.statusCode ?? 502;
    response.writeHead(status, answer.statusMessage || STATUS_CODES[status], headers);
    answer.pipe(response);
    // An upstream that breaks off mid-answer must not look like a complete one.
    answer.once('close', () => {
      if (!answer.complete) response.destroy();
    });
  }

  #fail(exchange: Exchange, failure: RouterFailure, target?: RouteTarget): void {
    const { request, response, requestId, hostname } = exchange;
    if (response.headersSent) return void response.destroy();
    const page = renderErrorPage(failure, { accept: request.headers.accept, requestId, hostname });
    response.writeHead(page.status, page.headers);
    response.end(request.method === 'HEAD' ? undefined : page.body);
    this.#logger.debug({ hostname, failure, target, requestId }, 'request not proxied');
    // An unread request body would otherwise hold the connection.
    request.resume();
  }

  async #handleUpgrade(request: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const requestId = requestIdOf(request);
    const hostname = hostnameOf(request.headers.host) ?? '';
    const reject = (failure: RouterFailure): void =>
      rejectUpgrade(
        client,
        renderErrorPage(failure, { accept: request.headers.accept, requestId, hostname }),
      );
    if (this.#closing) return reject('no_healthy_target');

    const entry = this.#table.find(hostname);
    if (!entry) return reject('unknown_host');
    const first = pickTarget(entry);
    if (!first) return reject('no_healthy_target');

    const headers = upstreamRequestHeaders(request, {
      requestId,
      trustForwarded: this.#options.trustForwardedHeaders ?? false,
    });
    const connectTimeoutMs = this.#options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
    client.on('error', () => client.destroy());
    let target: RouteTarget | undefined = first;
    for (let attempt = 0; target && attempt < 2 && !client.destroyed; attempt++) {
      try {
        await openUpgradeTunnel({ request, client, head, target, headers, connectTimeoutMs });
        this.#tunnels.add(client);
        client.once('close', () => this.#tunnels.delete(client));
        return;
      } catch (error) {
        this.#logger.warn({ hostname, target, err: error, requestId }, 'upgrade upstream failed');
        target = this.#nextTarget(hostname, target);
      }
    }
    reject('upstream_failed');
  }

  #finished(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) this.#onIdle?.();
  }

  async #shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    for (const tunnel of this.#tunnels) tunnel.destroy();

    const deadlineMs = this.#options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const isDrained = await this.#waitForIdle(deadlineMs);
    if (!isDrained)
      this.#logger.warn({ inFlight: this.#inFlight }, 'router closed with requests in flight');
    this.#server.closeAllConnections();
    this.#agent.destroy();
    await closed;
    // A closed router routes nothing; whoever opens it again sets the routes it serves.
    for (const route of this.#table.list()) this.#table.remove(route.hostname);
    this.#retired.clear();
  }

  /** True when no request is in flight, false when `ms` passed first. */
  #waitForIdle(ms: number): Promise<boolean> {
    if (this.#inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#onIdle = undefined;
        resolve(false);
      }, ms);
      this.#onIdle = () => {
        clearTimeout(timer);
        this.#onIdle = undefined;
        resolve(true);
      };
    });
  }
}

/**
 * Streams the request body once the upstream connection is up, so that a refused connection
 * leaves the body unread and the request can still be retried elsewhere.
 */
function sendBodyOnConnect(
  request: IncomingMessage,
  upstream: http.ClientRequest,
): { isSent: boolean } {
  const body = { isSent: false };
  if (!hasBody(request)) {
    upstream.end();
    return body;
  }
  upstream.once('socket', (socket: Socket) => {
    const send = (): void => {
      body.isSent = true;
      request.pipe(upstream);
    };
    if (socket.connecting) socket.once('connect', send);
    else send();
  });
  return body;
}

class UpstreamTimeout extends Error {
  constructor() {
    super('upstream timed out');
    this.name = 'UpstreamTimeout';
  }
}
