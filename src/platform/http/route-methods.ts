import type { FastifyInstance } from 'fastify';

interface RouteShape {
  matches: RegExp;
  methods: Set<string>;
  /** `*` at the root (the CORS preflight route): it adds its methods but makes no path known. */
  isCatchAll: boolean;
}

/** The methods registered for each route path: what a 405 names in its `Allow` header. */
export interface RouteMethods {
  /**
   * Methods of every route whose path matches `path` (no query); empty when only a catch-all
   * route or none matches, which makes the path unknown.
   */
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

function shapeOf(url: string): RouteShape {
  const isCatchAll = url === '*' || url === '/*';
  return { matches: isCatchAll ? /^/ : patternOf(url), methods: new Set(), isCatchAll };
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
    const shape = shapes.get(url) ?? shapeOf(url);
    for (const method of [route.method].flat()) shape.methods.add(method);
    shapes.set(url, shape);
  });
  return {
    allowedFor(path) {
      const allowed = new Set<string>();
      let isKnown = false;
      for (const shape of shapes.values()) {
        if (!shape.matches.test(path)) continue;
        isKnown ||= !shape.isCatchAll;
        for (const method of shape.methods) allowed.add(method);
      }
      return isKnown ? [...allowed].sort() : [];
    },
  };
}
