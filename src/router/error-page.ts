import { STATUS_CODES } from 'node:http';

import type { ErrorCode } from '../platform/errors.js';

export type RouterFailure =
  'unknown_host' | 'no_healthy_target' | 'upstream_failed' | 'upstream_timeout';

// TODO: dedicated codes (ROUTE_NOT_FOUND, ROUTE_UPSTREAM_FAILED, ROUTE_UPSTREAM_TIMEOUT)
// — the catalogue in platform/errors.ts is not this module's to change; closest ones meanwhile.
const FAILURES: Record<RouterFailure, { status: number; code: ErrorCode; message: string }> = {
  unknown_host: {
    status: 404,
    code: 'NOT_FOUND',
    message: 'No service is routed for this host.',
  },
  no_healthy_target: {
    status: 503,
    code: 'DEPENDENCY_UNAVAILABLE',
    message: 'The service has no healthy instance right now. Try again shortly.',
  },
  upstream_failed: {
    status: 502,
    code: 'DEPENDENCY_UNAVAILABLE',
    message: 'The service could not be reached or broke off its answer.',
  },
  upstream_timeout: {
    status: 504,
    code: 'DEPENDENCY_UNAVAILABLE',
    message: 'The service did not answer in time.',
  },
};

export interface ErrorPage {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The router's own answer for a failure: HTML for browsers, the API's JSON envelope otherwise. */
export function renderErrorPage(
  failure: RouterFailure,
  context: { accept: string | undefined; requestId: string; hostname: string | undefined },
): ErrorPage {
  const { status, code, message } = FAILURES[failure];
  const isHtml = (context.accept ?? '').includes('text/html');
  const body = isHtml
    ? html(status, message, context)
    : JSON.stringify({
        error: {
          code,
          message,
          details: { host: context.hostname ?? null },
          requestId: context.requestId,
        },
      });
  return {
    status,
    headers: {
      'Content-Type': isHtml ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Request-Id': context.requestId,
    },
    body,
  };
}

function html(
  status: number,
  message: string,
  context: { requestId: string; hostname: string | undefined },
): string {
  const title = `${status} ${STATUS_CODES[status] ?? 'Error'}`;
  return [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><title>${title}</title>`,
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}',
    'code{color:#666}</style></head><body>',
    `<h1>${title}</h1>`,
    `<p>${escapeHtml(message)}</p>`,
    `<p><code>host ${escapeHtml(context.hostname ?? '(none)')} · request ${escapeHtml(context.requestId)}</code></p>`,
    '<p><small>Switchyard router</small></p></body></html>',
  ].join('\n');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
