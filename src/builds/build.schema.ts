import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { BuildRow } from '../platform/db/schema.js';
import { GitRef } from '../services/service.schema.js';

export const BuildSchema = Type.Object({
  id: Uuid,
  serviceId: Uuid,
  ref: Type.String(),
  status: Type.Union(
    ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => Type.Literal(s)),
  ),
  commitSha: Nullable(Type.String()),
  failureReason: Nullable(Type.String()),
  attempt: Type.Integer(),
  releaseId: Nullable(Uuid),
  createdAt: Timestamp,
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  statusUrl: Type.String(),
  logsUrl: Type.String(),
});

export const CreateBuildBody = Type.Object(
  { ref: Type.Optional(GitRef) },
  { additionalProperties: false },
);

export const LogsQuery = Type.Object(
  { follow: Type.Optional(Type.Boolean({ default: false })) },
  { additionalProperties: false },
);

export const BuildLogs = Type.Object({
  lines: Type.Array(Type.Object({ seq: Type.Integer(), line: Type.String(), at: Timestamp })),
  status: Type.String(),
});

export function toBuildResponse(
  row: BuildRow & { release_id?: string | null },
): Static<typeof BuildSchema> {
  return {
    id: row.id,
    serviceId: row.service_id,
    ref: row.ref,
    status: row.status,
    commitSha: row.commit_sha,
    failureReason: row.failure_reason,
    attempt: row.attempt,
    releaseId: row.release_id ?? null,
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    statusUrl: `/v1/builds/${row.id}`,
    logsUrl: `/v1/builds/${row.id}/logs`,
  };
}
