import type { FastifyInstance } from 'fastify';

interface RouteShape {
  matches: RegExp;
  methods: Set<string>;
}

/** The methods registered for each route path: what a 405 names in its `Allow` header. */
export interface RouteMethods {
  /** Methods of every route whose path matches `path` (no query); empty when none does. */
  allowedFor(path: string): string[];
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A Fastify path as a regular expression: `:name` (with or without its own pattern) is one
 * segment, `*` the rest; a trailing slash is optional, as the app's router ignores it.
 */
function patternOf(url: string): RegExp {
  const segments = url.split('/').map((segment) => {
    if (segment === '*') return '.*';
    if (segment.startsWith(':')) return '[^/]+';
    return escape(segment);
  });
  const body = segments.join('/').replace(/\/$/, '');
  return new RegExp(`^${body}/?$`);
}

/**
 * Records every route the app adds from now on (call before any is registered). Only the
 * not-found handler asks, so a request that matches a route never pays for the lookup.
 */
export function trackRouteMethods(app: FastifyInstance): RouteMethods {
  const shapes = new Map<string, RouteShape>();
  app.addHook('onRoute', (route) => {
    const url = route.url ?? route.path;
    if (url === undefined) return;
    const shape = shapes.get(url) ?? { matches: patternOf(url), methods: new Set<string>() };
    for (const method of [route.method].flat()) shape.methods.add(method);
    shapes.set(url, shape);
  });
  return {
    allowedFor(path) {
      const allowed = new Set<string>();
      for (const shape of shapes.values()) {
        if (!shape.matches.test(path)) continue;
        for (const method of shape.methods) allowed.add(method);
      }
      return [...allowed].sort();
    },
  };
}
