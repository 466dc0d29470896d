import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import type { Db } from '../db/transaction.js';
import * as repo from './idempotency.repository.js';

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/**
 * Runs `work` once per `Idempotency-Key`: a retry with the same key and the same request gets
 * the first answer; the same key with a different request is a 409. Without the header the
 * work simply runs. A failed first attempt frees the key so the client can retry.
 */
export async function idempotent<T>(
  db: Db,
  request: FastifyRequest,
  reply: FastifyReply,
  userId: string,
  statusCode: number,
  work: () => Promise<T>,
): Promise<T> {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return work();
  const key = Array.isArray(header) ? (header[0] ?? '') : header;
  if (!KEY_PATTERN.test(key)) {
    throw new AppError(
      'VALIDATION_FAILED',
      'Idempotency-Key must be 1-255 visible ASCII characters',
    );
  }
  const requestHash = createHash('sha256')
    .update(`${request.method}\0${request.url}\0${JSON.stringify(request.body ?? null)}`)
    .digest('hex');

  const claim = await repo.claimIdempotencyKey(db, userId, key, requestHash);
  switch (claim.state) {
    case 'mismatch':
      throw new AppError(
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was used with a different request',
      );
    case 'in_progress':
      throw new AppError(
        'IDEMPOTENCY_IN_PROGRESS',
        'A request with this Idempotency-Key is still running',
        {
          headers: { 'retry-after': '1' },
        },
      );
    case 'done':
      void reply.header('idempotent-replayed', 'true');
      void reply.status(claim.statusCode);
      return claim.body as T;
    case 'claimed':
      break;
  }
  try {
    const result = await work();
    await repo.completeIdempotencyKey(db, userId, key, statusCode, result);
    return result;
  } catch (error) {
    await repo.releaseIdempotencyKey(db, userId, key);
    throw error;
  }
}
