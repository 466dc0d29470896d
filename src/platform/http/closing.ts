import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { sendError } from './error-handler.js';

const refused = new WeakSet<FastifyRequest>();

/** True for a request answered SHUTTING_DOWN: it was shed, never handled. */
export function wasRefusedWhileClosing(request: FastifyRequest): boolean {
  return refused.has(request);
}

/**
 * Once `close()` begins, requests that still arrive (on kept-alive connections, or pipelined
 * behind one in flight) get 503 SHUTTING_DOWN in the standard envelope with `Connection:
 * close`, without running their handler, so a client retries elsewhere. Fastify's own refusal
 * (`return503OnClosing`) must be off: its body is not our envelope.
 *
 * Call after the hooks every response needs (request id, security headers) and before any
 * route's own hooks (authentication), so that the refusal carries the first and skips the rest.
 */
export function refuseWhileClosing(app: FastifyInstance): void {
  let isClosing = false;
  app.addHook('preClose', async () => {
    isClosing = true;
  });
  app.addHook('onRequest', (request, reply, done) => {
    if (!isClosing) {
      done();
      return;
    }
    refused.add(request);
    void reply.header('connection', 'close');
    const error = new AppError('SHUTTING_DOWN', 'The server is shutting down; retry the request', {
      headers: { 'retry-after': '1' },
    });
    sendError(reply, request, error);
  });
}
