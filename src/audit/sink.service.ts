import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/principal.js';
import { assertScope, assertUnrestricted } from '../access/scopes.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import type { Page } from '../platform/http/pagination.js';
import { checkOutboundUrl, redactUrl, type Resolver } from '../platform/url-guard.js';
import { openValue, sealValue, type MasterKeyRing } from '../secrets/secret-crypto.js';
import type { AuditRecorder } from './audit-recorder.js';
import type { SinkFormat, SinkRow } from './audit.tables.js';
import { newSigningSecret } from './sink-signature.js';
import { lockChainHead } from './audit.repository.js';
import * as repo from './sink.repository.js';

/** What a sink needs to authenticate its deliveries; sealed at rest, never logged or shown again. */
export interface SinkCredentials {
  signingSecret: string;
  bearerToken?: string;
}

export interface CreateSinkInput {
  name: string;
  format: SinkFormat;
  url: string;
  targetId?: string;
  signingSecret?: string;
  bearerToken?: string;
  maxAttempts?: number;
  batchSize?: number;
}

const SINK_NOT_FOUND = 'No audit sink with that id';

function contextOf(sinkId: string): string {
  return `audit-sink:${sinkId}`;
}

/** Seals a sink's credentials under the Lockbox master key, bound to the sink's id. */
export function sealCredentials(keys: MasterKeyRing, sinkId: string, credentials: SinkCredentials) {
  return sealValue(keys, Buffer.from(JSON.stringify(credentials), 'utf8'), contextOf(sinkId));
}

export function openCredentials(keys: MasterKeyRing, sink: SinkRow): SinkCredentials {
  const sealed = {
    keyId: sink.credentials_key_id,
    wrappedKey: sink.credentials_wrapped_key,
    ciphertext: sink.credentials_ciphertext,
  };
  return JSON.parse(
    openValue(keys, sealed, contextOf(sink.id)).toString('utf8'),
  ) as SinkCredentials;
}

export function toSinkResponse(
  sink: SinkRow,
  counts?: { pending: number; delivered: number; dead: number },
) {
  return {
    id: sink.id,
    name: sink.name,
    format: sink.format,
    url: redactUrl(sink.url),
    targetId: sink.target_id,
    status: sink.status,
    maxAttempts: sink.max_attempts,
    batchSize: sink.batch_size,
    createdAt: sink.created_at.toISOString(),
    ...(counts === undefined ? {} : { deliveries: counts }),
  };
}

/**
 * Compliance sinks, managed by instance admins. A sink's URL passes the outbound URL guard
 * when it is created and again before every delivery; its credentials are sealed at rest.
 * Creating, deleting and redelivering are audited with the change.
 */
export function createSinkService(deps: {
  db: Db;
  keys: MasterKeyRing;
  recorder: AuditRecorder;
  resolver: Resolver;
  outbound: { allowPrivateNetworks: boolean; allowHttp: boolean };
}) {
  const { db, recorder } = deps;

  function assertAdmin(principal: Principal): void {
    assertScope(principal, 'admin');
    assertUnrestricted(principal);
    if (!principal.isInstanceAdmin)
      throw new AppError('FORBIDDEN', 'Only instance admins manage audit sinks');
  }

  async function getSink(id: string): Promise<SinkRow> {
    const sink = await repo.findSink(db, id);
    if (sink === undefined) throw new AppError('AUDIT_SINK_NOT_FOUND', SINK_NOT_FOUND);
    return sink;
  }

  return {
    /** Creates a sink; the answer shows the signing secret this once. */
    async create(principal: Principal, input: CreateSinkInput) {
      assertAdmin(principal);
      const url = await checkOutboundUrl(input.url, deps.outbound, deps.resolver);
      const id = randomUUID();
      const credentials: SinkCredentials = {
        signingSecret: input.signingSecret ?? newSigningSecret(),
        ...(input.bearerToken === undefined ? {} : { bearerToken: input.bearerToken }),
      };
      const sealed = sealCredentials(deps.keys, id, credentials);
      const sink = await inTransaction(db, async (trx) => {
        const row = await repo.insertSink(trx, {
          id,
          name: input.name,
          format: input.format,
          url: url.toString(),
          targetId: input.targetId ?? null,
          maxAttempts: input.maxAttempts ?? 12,
          batchSize: input.batchSize ?? 50,
          sealed,
          createdBy: principal.userId,
        });
        if (row === undefined)
          throw new AppError('AUDIT_SINK_NAME_TAKEN', `An audit sink named "${input.name}" exists`);
        await recorder.recordIn(trx, {
          action: 'audit_sink.create',
          resource: { type: 'audit_sink', id, name: input.name },
          actorRole: 'instance_admin',
          details: {
            format: input.format,
            url: redactUrl(row.url),
            hasBearerToken: input.bearerToken !== undefined,
          },
        });
        return row;
      });
      return { ...toSinkResponse(sink), signingSecret: credentials.signingSecret };
    },

    async list(
      principal: Principal,
      page: { limit: number; cursor: string | undefined },
    ): Promise<Page<ReturnType<typeof toSinkResponse>>> {
      assertAdmin(principal);
      const after =
        page.cursor === undefined
          ? undefined
          : Buffer.from(page.cursor, 'base64url').toString('utf8');
      const rows = await repo.listSinks(db, page.limit, after);
      const data = rows.slice(0, page.limit);
      const last = data.at(-1);
      return {
        data: data.map((row) => toSinkResponse(row)),
        nextCursor:
          rows.length > page.limit && last !== undefined
            ? Buffer.from(last.name, 'utf8').toString('base64url')
            : null,
      };
    },

    /** One sink with its delivery counts (pending, delivered, dead). */
    async get(principal: Principal, id: string) {
      assertAdmin(principal);
      const sink = await getSink(id);
      return toSinkResponse(sink, await repo.countOutbox(db, id));
    },

    async remove(principal: Principal, id: string): Promise<void> {
      assertAdmin(principal);
      await inTransaction(db, async (trx) => {
        // Event writers lock the chain head, then (fanning out) the sinks; so do we. Reading the
        // sink under that lock also makes a concurrent delete of the same sink a clean 404.
        await lockChainHead(trx);
        const sink = await repo.findSink(trx, id);
        if (sink === undefined || !(await repo.deleteSink(trx, id)))
          throw new AppError('AUDIT_SINK_NOT_FOUND', SINK_NOT_FOUND);
        await recorder.recordIn(trx, {
          action: 'audit_sink.delete',
          resource: { type: 'audit_sink', id, name: sink.name },
          actorRole: 'instance_admin',
        });
      });
    },

    async setStatus(principal: Principal, id: string, status: 'active' | 'paused') {
      assertAdmin(principal);
      return inTransaction(db, async (trx) => {
        const before = await repo.findSink(trx, id);
        const sink = await repo.setSinkStatus(trx, id, status);
        if (before === undefined || sink === undefined)
          throw new AppError('AUDIT_SINK_NOT_FOUND', SINK_NOT_FOUND);
        await recorder.recordIn(trx, {
          action: 'audit_sink.update',
          resource: { type: 'audit_sink', id, name: sink.name },
          actorRole: 'instance_admin',
          diff: before.status === status ? {} : { status: { from: before.status, to: status } },
        });
        return toSinkResponse(sink);
      });
    },

    /** Puts dead-lettered events (all, or the positions listed) back in line for delivery. */
    async redeliver(
      principal: Principal,
      id: string,
      seqs: number[] | undefined,
    ): Promise<{ requeued: number }> {
      assertAdmin(principal);
      return inTransaction(db, async (trx) => {
        const sink = await repo.findSink(trx, id);
        if (sink === undefined) throw new AppError('AUDIT_SINK_NOT_FOUND', SINK_NOT_FOUND);
        const requeued = await repo.redeliver(trx, id, seqs);
        await recorder.recordIn(trx, {
          action: 'audit_sink.redeliver',
          resource: { type: 'audit_sink', id, name: sink.name },
          actorRole: 'instance_admin',
          details: { requeued, seqs: seqs ?? 'all dead' },
        });
        return { requeued };
      });
    },

    credentialsOf: (sink: SinkRow) => openCredentials(deps.keys, sink),
  };
}

export type SinkService = ReturnType<typeof createSinkService>;
