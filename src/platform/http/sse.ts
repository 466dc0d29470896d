import type { Server } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { knownSecrets } from '../known-secrets.js';

export interface ServerSentEvent {
  event?: string;
  id?: string;
  data: unknown;
}

/**
 * Streams events to the client as server-sent events until the source ends or the client
 * goes away (the signal given to `source` aborts then). A comment line every 15 s keeps
 * proxies from closing an idle stream.
 */
export async function sendEventStream(
  request: FastifyRequest,
  reply: FastifyReply,
  source: (signal: AbortSignal) => AsyncIterable<ServerSentEvent>,
): Promise<void> {
  const controller = new AbortController();
  const onClose = () => controller.abort();
  request.raw.on('close', onClose);
  const streams = openStreamsOf(request.server.server);
  streams.add(controller);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': String(request.id),
  });
  const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
  try {
    for await (const event of source(controller.signal)) {
      if (controller.signal.aborted) break;
      let frame = '';
      if (event.event !== undefined) frame += `event: ${event.event}\n`;
      if (event.id !== undefined) frame += `id: ${event.id}\n`;
      frame += `data: ${JSON.stringify(event.data)}\n\n`;
      // Streams carry output written by others: known secret values never leave in it.
      raw.write(knownSecrets.scrub(frame));
    }
  } catch (error) {
    request.log.warn({ err: error }, 'event stream failed');
    raw.write(`event: error\ndata: ${JSON.stringify({ message: 'stream interrupted' })}\n\n`);
  } finally {
    clearInterval(keepAlive);
    request.raw.off('close', onClose);
    streams.delete(controller);
    raw.end();
  }
}

// Streams being sent, per HTTP server: a follow never ends by itself, so closing ends them.
const openStreams = new WeakMap<Server, Set<AbortController>>();

function openStreamsOf(server: Server): Set<AbortController> {
  let streams = openStreams.get(server);
  if (streams === undefined) {
    streams = new Set();
    openStreams.set(server, streams);
  }
  return streams;
}

/**
 * Ends every event stream when the app starts closing, so that a client following logs does
 * not hold the drain until the shutdown deadline; the client sees the stream end and may
 * reconnect elsewhere.
 */
export function endEventStreamsOnClose(app: FastifyInstance): void {
  app.addHook('preClose', async () => {
    for (const controller of openStreamsOf(app.server)) controller.abort();
  });
}

/** Resolves after `ms`, or early (without throwing) when the signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
