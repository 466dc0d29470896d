import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import type { Queue } from '../platform/queue.js';
import type { ServiceService } from '../services/service.service.js';
import { sealValue, type MasterKeyRing } from './secret-crypto.js';
import * as repo from './secret.repository.js';
import * as rotations from './rotation.repository.js';
import { SECRET_ROTATE } from './rotation.jobs.js';
import { stagedContext } from './rotation-runner.js';
import { toRotationResponse, valueOfBody, type RotateBody } from './secret.schema.js';
import {
  validateSecret,
  type Caller,
  type ScopeRef,
  type SecretService,
} from './secret.service.js';
import type { RotationRow, SecretRow } from './secret.tables.js';

const ROTATION_NOT_FOUND = 'Secret rotation not found';

/** The scope reference that names where a stored secret lives (ids are accepted everywhere). */
function refOf(secret: SecretRow): ScopeRef {
  if (secret.service_id !== null) return { kind: 'service', serviceId: secret.service_id };
  if (secret.environment_id !== null)
    return { kind: 'environment', project: secret.project_id, environment: secret.environment_id };
  return { kind: 'project', project: secret.project_id };
}

/** Requests and reports rotations; the work itself is the secret.rotate job (rotation-runner). */
export function createRotationService(deps: {
  db: Db;
  logger: Logger;
  queue: Queue;
  keys: MasterKeyRing;
  secrets: SecretService;
  services: ServiceService;
}) {
  const db = repo.lockboxDb(deps.db);

  async function withTargets(rows: RotationRow[]) {
    const targets = await rotations.listTargetsOf(
      db,
      rows.map((row) => row.id),
    );
    return (row: RotationRow) =>
      toRotationResponse(
        row,
        targets.filter((target) => target.rotation_id === row.id),
      );
  }

  return {
    /**
     * Queues a rotation of an existing secret to a supplied value (sealed until the job
     * writes it) or to `generateBytes` random bytes. Throws SECRET_ROTATION_RUNNING while
     * another rotation of it is unfinished.
     */
    async request(caller: Caller, ref: ScopeRef, name: string, body: RotateBody) {
      const supplied = valueOfBody(body);
      const sources = [body.value, body.valueBase64, body.generateBytes].filter(
        (v) => v !== undefined,
      ).length;
      if (sources > 1)
        throw new AppError(
          'SECRET_VALUE_INVALID',
          'Give value, valueBase64 or generateBytes, not several',
        );
      validateSecret(name, supplied);
      const { scope } = await deps.secrets.resolve(caller, ref, 'write');
      const secret = await deps.secrets.getSecret(scope, name);
      const id = randomUUID();
      const staged =
        supplied === undefined ? undefined : sealValue(deps.keys, supplied, stagedContext(id));
      // Before the transaction: defining the queue needs a connection of its own (PGlite has one).
      await deps.queue.define(SECRET_ROTATE);
      const rotation = await inTransaction(deps.db, async (trx) => {
        const row = await rotations.insertRotation(repo.lockboxTrx(trx), {
          id,
          secretId: secret.id,
          staged,
          generateBytes: supplied === undefined ? (body.generateBytes ?? 32) : undefined,
          requestedBy: caller.principal.userId,
        });
        if (row === undefined)
          throw new AppError('SECRET_ROTATION_RUNNING', `"${name}" is already being rotated`);
        await deps.queue.send(SECRET_ROTATE, { rotationId: row.id }, { trx });
        return row;
      });
      deps.secrets.record(caller, 'rotation.requested', secret, { rotationId: rotation.id });
      return {
        id: rotation.id,
        status: rotation.state,
        statusUrl: `/v1/secret-rotations/${rotation.id}`,
      };
    },

    async get(caller: Caller, rotationId: string) {
      const row = await rotations.findRotation(db, rotationId);
      const secret = row === undefined ? undefined : await repo.getSecretById(db, row.secret_id);
      if (row === undefined || secret === undefined)
        throw new AppError('ROTATION_NOT_FOUND', ROTATION_NOT_FOUND);
      try {
        await deps.secrets.resolve(caller, refOf(secret), 'list');
      } catch (error) {
        // Rotations of projects the caller cannot see answer like ones that do not exist.
        if (error instanceof AppError && error.status === 404)
          throw new AppError('ROTATION_NOT_FOUND', ROTATION_NOT_FOUND);
        throw error;
      }
      return (await withTargets([row]))(row);
    },

    async listForSecret(caller: Caller, ref: ScopeRef, name: string, page: PageRequest) {
      const { scope } = await deps.secrets.resolve(caller, ref, 'list');
      const secret = await deps.secrets.getSecret(scope, name);
      const rows = await rotations.listRotationsOfSecret(db, secret.id, page);
      return toPage(
        rows,
        page,
        (row) => ({ at: row.cursor_at, id: row.id }),
        await withTargets(rows),
      );
    },

    async listForService(caller: Caller, serviceId: string, page: PageRequest) {
      const { service } = await deps.services.access(caller.principal, serviceId, 'secrets.list');
      const rows = await rotations.listRotationsOfService(db, service.id, page);
      return toPage(
        rows,
        page,
        (row) => ({ at: row.cursor_at, id: row.id }),
        await withTargets(rows),
      );
    },
  };
}

export type RotationService = ReturnType<typeof createRotationService>;
