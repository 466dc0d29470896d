import type { FastifyInstance } from 'fastify';

/** A route group on its way out: when it goes, and what replaces it. */
export interface Deprecation {
  /** When the group was deprecated (RFC 9745 `Deprecation: @<epoch seconds>`). */
  since: Date;
  /** When it stops working (RFC 8594 `Sunset`, an HTTP date). */
  sunset: Date;
  /** The successor's URL, sent as `Link: <url>; rel="successor-version"`. */
  successor?: string;
}

/**
 * Marks every route registered in `scope` (a plugin, i.e. a route group) deprecated: its
 * answers carry `Deprecation`, `Sunset` and a link to the successor, and the OpenAPI document
 * flags its operations. Call it before the group's routes are added.
 */
export function markDeprecated(scope: FastifyInstance, deprecation: Deprecation): void {
  if (deprecation.sunset <= deprecation.since) {
    throw new Error('a deprecation must sunset after it starts');
  }
  const headers: Record<string, string> = {
    deprecation: `@${Math.floor(deprecation.since.getTime() / 1000)}`,
    sunset: deprecation.sunset.toUTCString(),
  };
  if (deprecation.successor !== undefined) {
    headers['link'] = `<${deprecation.successor}>; rel="successor-version"`;
  }

  scope.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, deprecated: true } as typeof route.schema;
  });
  scope.addHook('onSend', async (_request, reply, payload) => {
    void reply.headers(headers);
    return payload;
  });
}
