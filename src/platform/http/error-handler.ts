import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { knownSecrets, scrubJson } from '../known-secrets.js';
import { trackRouteMethods } from './route-methods.js';

interface Envelope {
  error: { code: string; message: string; details?: unknown; requestId: string };
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_FAILED',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
  FST_ERR_BAD_URL: 'VALIDATION_FAILED',
  FST_ERR_MAX_PARAM_LENGTH: 'VALIDATION_FAILED',
};

// Values PostgreSQL refuses to store and only a client can have sent: a NUL character in text
// (22021) or in JSON (22P05), a date outside its range (22008). The input is bad, not the server.
const UNSTORABLE = new Set(['22021', '22P05', '22008']);

// Connection-level failures of PostgreSQL or the network: the dependency is down, not us.
const UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08006',
  // The statement timeout or lock timeout ended a query: the database did not answer in time.
  '57014',
  '55P03',
]);

function isUnstorableValue(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && UNSTORABLE.has(code)) return true;
    current = current.cause;
  }
  return false;
}

function isDependencyFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE.has(code)) return true;
    if (/timeout exceeded when trying to connect|Connection terminated/i.test(current.message)) {
      return true;
    }
    current = current.cause;
  }
  return false;
}

export function toAppError(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation !== undefined) {
    return new AppError(
      'VALIDATION_FAILED',
      `Request ${fastifyError.validationContext ?? 'input'} is invalid: ${fastifyError.message ?? ''}`,
      {
        details: fastifyError.validation.map((issue) => ({
          in: fastifyError.validationContext,
          path: issue.instancePath === '' ? '/' : issue.instancePath,
          message: issue.message,
          ...(issue.keyword === 'additionalProperties'
            ? { field: (issue.params as { additionalProperty?: string }).additionalProperty }
            : {}),
        })),
      },
    );
  }
  const mapped = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code];
  if (mapped !== undefined) return new AppError(mapped, fastifyError.message ?? mapped);
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return new AppError('INVALID_JSON', 'The body is not valid JSON');
  }
  if (isUnstorableValue(error)) {
    return new AppError(
      'VALIDATION_FAILED',
      'The request contains a value that cannot be stored: a NUL character or a date out of range',
    );
  }
  if (isDependencyFailure(error)) {
    return new AppError('DEPENDENCY_UNAVAILABLE', 'A dependency is unavailable; retry shortly', {
      headers: { 'retry-after': '5' },
    });
  }
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode === 429) {
    return new AppError('RATE_LIMITED', 'Too many requests');
  }
  return fromClientStatus(fastifyError.statusCode);
}

// Plugins (the static files of /docs, for one) refuse requests with a bare 4xx error; keep the
// status, in the envelope, instead of letting it become a 500.
const CLIENT_STATUS_CODES: Record<number, ErrorCode> = {
  400: 'VALIDATION_FAILED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

function fromClientStatus(status: number | undefined): AppError | undefined {
  const code = status === undefined ? undefined : CLIENT_STATUS_CODES[status];
  if (code === undefined) return undefined;
  return new AppError(
    code,
    ERROR_CODES[code].meaning.replace(/^./, (c) => c.toUpperCase()),
  );
}

/** Sends the envelope; a known secret value echoed into the message or details is scrubbed. */
export function sendError(reply: FastifyReply, request: FastifyRequest, error: AppError): void {
  const message = knownSecrets.scrub(error.message);
  const body: Envelope = {
    error: { code: error.code, message, requestId: String(request.id) },
  };
  if (error.details !== undefined) body.error.details = scrubJson(error.details);
  for (const [name, value] of Object.entries(error.headers ?? {})) void reply.header(name, value);
  void reply.status(ERROR_CODES[error.code].status).type('application/json').send(body);
}

/** One error handler for the whole API: every failure leaves in the standard envelope. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const appError = toAppError(error);
    if (appError !== undefined) {
      const level = appError.status >= 500 ? 'warn' : 'info';
      request.log[level]({ code: appError.code, status: appError.status }, 'request failed');
      sendError(reply, request, appError);
      return;
    }
    request.log.error({ err: error }, 'unhandled error');
    sendError(reply, request, new AppError('INTERNAL', 'An internal error occurred'));
  });

  // A known path asked with a method it lacks answers 405 naming the ones it has.
  const routes = trackRouteMethods(app);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = routes.allowedFor(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      const message = `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`;
      const headers = { allow: allowed.join(', ') };
      sendError(reply, request, new AppError('METHOD_NOT_ALLOWED', message, { headers }));
      return;
    }
    sendError(reply, request, new AppError('NOT_FOUND', `No route ${request.method} ${path}`));
  });
}

/**
 * Fastify's `frameworkErrors` hook: failures found before routing (a path that is not valid
 * percent-encoding, a path segment over maxParamLength), which skip the error handler and the
 * onRequest hooks.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  void reply.header('x-request-id', request.id);
  const appError = toAppError(error) ?? new AppError('INTERNAL', 'An internal error occurred');
  request.log.info({ code: appError.code, status: appError.status }, 'request failed');
  sendError(reply, request, appError);
}

/**
 * Fastify's `clientErrorHandler`: requests Node's HTTP parser refuses (conflicting
 * Content-Length and Transfer-Encoding, bare LF, oversized headers) never reach routing; they
 * get the envelope too, and the connection is closed.
 */
export function handleClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code: ErrorCode =
    error.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : 'MALFORMED_REQUEST';
  const { status, meaning } = ERROR_CODES[code];
  const message = meaning.replace(/^./, (c) => c.toUpperCase());
  const body = JSON.stringify({ error: { code, message, requestId: randomUUID() } });
  socket.end(
    [
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}`,
      'content-type: application/json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
      'connection: close',
      '',
      body,
    ].join('\r\n'),
  );
}
