import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { AuditEventRow } from './audit.tables.js';

const Hash = Type.String({ pattern: '^[0-9a-f]{64}$' });
const OpenObject = Type.Object({}, { additionalProperties: true });

export const AuditEvent = Type.Object({
  id: Uuid,
  seq: Type.Integer({ description: 'Position in the hash chain, from 1' }),
  occurredAt: Timestamp,
  actor: Type.Object({
    type: Type.Union([
      Type.Literal('user'),
      Type.Literal('api_token'),
      Type.Literal('anonymous'),
      Type.Literal('system'),
    ]),
    id: Nullable(Uuid),
    tokenId: Nullable(Uuid),
    role: Nullable(
      Type.String({
        description: 'owner, admin, developer, readonly or instance_admin, at the time',
      }),
    ),
  }),
  action: Type.String(),
  resource: Nullable(
    Type.Object({
      type: Type.String(),
      id: Nullable(Type.String()),
      name: Nullable(Type.String()),
    }),
  ),
  projectId: Nullable(Uuid),
  environmentId: Nullable(Uuid),
  clientIp: Nullable(Type.String()),
  userAgent: Nullable(Type.String()),
  requestId: Nullable(Type.String()),
  outcome: Type.Union([Type.Literal('success'), Type.Literal('failure'), Type.Literal('denied')]),
  diff: Nullable(OpenObject),
  details: Nullable(OpenObject),
  contentHash: Hash,
  prevHash: Hash,
  hash: Hash,
});

/** The filters the list accepts; anything else is refused with INVALID_FILTER. */
export const AUDIT_FILTERS = [
  'actor',
  'action',
  'resourceType',
  'resourceId',
  'project',
  'environment',
  'outcome',
  'from',
  'to',
] as const;

export const AuditEventQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    actor: Type.Optional(Uuid),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    resourceType: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    resourceId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    project: Type.Optional(
      Type.String({ minLength: 1, maxLength: 63, description: 'A project id or slug' }),
    ),
    environment: Type.Optional(Uuid),
    outcome: Type.Optional(
      Type.Union([Type.Literal('success'), Type.Literal('failure'), Type.Literal('denied')]),
    ),
    from: Type.Optional(Timestamp),
    to: Type.Optional(Timestamp),
  },
  // Unknown keys reach the handler, which names them in a 400 INVALID_FILTER.
  { additionalProperties: true },
);
export type AuditEventQuery = Static<typeof AuditEventQuery>;

export const AuditExportQuery = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' }),
    ),
    from: Timestamp,
    to: Timestamp,
    project: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  },
  { additionalProperties: true },
);
export type AuditExportQuery = Static<typeof AuditExportQuery>;

const Break = Type.Object({
  seq: Type.Integer(),
  eventId: Nullable(Uuid),
  reason: Type.String(),
  message: Type.String(),
});

export const VerifyResult = Type.Object({
  ok: Type.Boolean(),
  checkedEvents: Type.Integer(),
  head: Type.Object({ seq: Type.Integer(), hash: Hash }),
  firstBreak: Nullable(Break),
  checkpoints: Type.Object({
    checked: Type.Integer(),
    unverifiable: Type.Integer(),
    latest: Nullable(Type.Object({ seq: Type.Integer(), createdAt: Timestamp })),
  }),
});

export const Checkpoint = Type.Object({
  id: Uuid,
  seq: Type.Integer(),
  hash: Hash,
  keyId: Type.String(),
  signature: Type.String({
    description: 'Compact JWS over {typ, seq, hash, at}; verify with /.well-known/jwks.json',
  }),
  createdAt: Timestamp,
});

export function toAuditEventResponse(row: AuditEventRow): Static<typeof AuditEvent> {
  return {
    id: row.id,
    seq: Number(row.seq),
    occurredAt: row.occurred_at.toISOString(),
    actor: {
      type: row.actor_type,
      id: row.actor_id,
      tokenId: row.actor_token_id,
      role: row.actor_role,
    },
    action: row.action,
    resource:
      row.resource_type === null
        ? null
        : { type: row.resource_type, id: row.resource_id, name: row.resource_name },
    projectId: row.project_id,
    environmentId: row.environment_id,
    clientIp: row.client_ip,
    userAgent: row.user_agent,
    requestId: row.request_id,
    outcome: row.outcome,
    diff: (row.diff ?? null) as Record<string, unknown> | null,
    details: (row.details ?? null) as Record<string, unknown> | null,
    contentHash: row.content_hash,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
