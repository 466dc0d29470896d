import Fastify from 'fastify';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';

/**
 * The headers helmet puts on a response with these options, asked once at start from a
 * throwaway app. Helmet stays the judge of what the headers are; the plugin itself would
 * rebuild its middleware chain and run it on every request to set the same constant values.
 */
export async function helmetHeaders(
  options: FastifyHelmetOptions,
): Promise<Record<string, string>> {
  const probe = Fastify({ logger: false });
  await probe.register(helmet, { ...options, global: true });
  let headers: Record<string, string> = {};
  // The handler runs after every onRequest hook: what the response holds then is helmet's.
  probe.get('/', async (_request, reply) => {
    headers = Object.fromEntries(
      Object.entries(reply.raw.getHeaders()).map(([name, value]) => [name, String(value)]),
    );
    return '';
  });
  await probe.inject({ url: '/' });
  await probe.close();
  if (Object.keys(headers).length === 0) throw new Error('helmet set no security headers');
  return headers;
}

/** Puts the same security headers on every response that reaches the onRequest hooks. */
export function installSecurityHeaders(
  app: FastifyInstance,
  headers: Readonly<Record<string, string>>,
): void {
  const entries = Object.entries(headers);
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of entries) void reply.header(name, value);
    done();
  });
}
