import type { FastifyReply, FastifyRequest } from 'fastify';
import { scrubJson } from '../known-secrets.js';

/**
 * A `preSerialization` hook for routes that return text written by others (build and
 * workload output): every value the process knows as a secret is replaced, including ones
 * learned after the text was stored.
 */
export async function scrubKnownSecrets(
  _request: FastifyRequest,
  _reply: FastifyReply,
  payload: unknown,
): Promise<unknown> {
  return scrubJson(payload);
}
