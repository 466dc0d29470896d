import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { jwtVerify } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { Db } from '../src/platform/db/transaction.js';
import { findServiceAccess } from '../src/services/service.repository.js';

/**
 * The bare servers Switchyard's routes are measured against: plain Fastify, no plugins,
 * no hooks, no logging, doing only the essential work of the route they stand in for.
 */

export interface VerifySettings {
  publicKey: KeyObject;
  issuer: string;
  audience: string;
}

/** Listens on 127.0.0.1 with a port the system picks; resolves the base URL. */
export async function listenLocal(app: {
  listen(options: { host: string; port: number }): Promise<string>;
}): Promise<string> {
  return app.listen({ host: '127.0.0.1', port: 0 });
}

export function constantJsonServer(): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  return app;
}

async function verifyBearer(request: FastifyRequest, settings: VerifySettings) {
  const token = request.headers.authorization?.slice('Bearer '.length) ?? '';
  const { payload } = await jwtVerify(token, settings.publicKey, {
    algorithms: ['EdDSA'],
    issuer: settings.issuer,
    audience: settings.audience,
  });
  return payload;
}

/** One EdDSA JWT verify and one SELECT by primary key: the floor for an authenticated read. */
export function verifyAndSelectServer(db: Db, settings: VerifySettings): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get<{ Params: { id: string } }>('/services/:id', async (request, reply) => {
    await verifyBearer(request, settings);
    const row = await db
      .selectFrom('services')
      .selectAll()
      .where('id', '=', request.params.id)
      .executeTakeFirst();
    if (row === undefined) return reply.status(404).send({ error: 'not found' });
    return row;
  });
  return app;
}

/**
 * Diagnostic: the same verify followed by the query the real route uses to load a service
 * with the caller's access to it, without the framework around it.
 */
export function verifyAndAccessQueryServer(db: Db, settings: VerifySettings): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get<{ Params: { id: string } }>('/services/:id', async (request, reply) => {
    const claims = await verifyBearer(request, settings);
    const found = await findServiceAccess(db, request.params.id, String(claims.sub));
    if (found === undefined) return reply.status(404).send({ error: 'not found' });
    return found.service;
  });
  return app;
}
