import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { DeploymentRow } from '../platform/db/schema.js';

export const DeploymentSchema = Type.Object({
  id: Uuid,
  serviceId: Uuid,
  environmentId: Uuid,
  releaseId: Uuid,
  kind: Type.String(),
  replicas: Type.Integer(),
  status: Type.String(),
  failureReason: Nullable(Type.String()),
  createdAt: Timestamp,
  startedAt: Nullable(Timestamp),
  liveAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  statusUrl: Type.String(),
});

export const CreateDeploymentBody = Type.Object(
  {
    environment: Type.String({ minLength: 1, maxLength: 63 }),
    releaseId: Type.Optional(Uuid),
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
  },
  { additionalProperties: false },
);

export const RollbackBody = Type.Object(
  { environment: Type.String({ minLength: 1, maxLength: 63 }), releaseId: Type.Optional(Uuid) },
  { additionalProperties: false },
);

export const ListDeploymentsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    environment: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  },
  { additionalProperties: false },
);

export const StatusQuery = Type.Object(
  { environment: Type.String({ minLength: 1, maxLength: 63 }) },
  { additionalProperties: false },
);

export const Instance = Type.Object({
  id: Type.String(),
  state: Type.String(),
  restarts: Type.Integer(),
  startedAt: Timestamp,
});

export const ServiceStatus = Type.Object({
  environment: Type.String(),
  url: Type.String(),
  isLive: Type.Boolean(),
  isHealthy: Type.Boolean(),
  liveSince: Nullable(Timestamp),
  deployment: Nullable(DeploymentSchema),
  release: Nullable(
    Type.Object({
      id: Uuid,
      version: Type.Integer(),
      commitSha: Type.String(),
      digest: Type.String(),
    }),
  ),
  instances: Type.Array(Instance),
});

export const DeploymentLogsQuery = Type.Object(
  {
    follow: Type.Optional(Type.Boolean({ default: false })),
    tail: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  },
  { additionalProperties: false },
);

export const DeploymentLogs = Type.Object({
  lines: Type.Array(
    Type.Object({
      at: Type.String(),
      instanceId: Type.String(),
      stream: Type.String(),
      line: Type.String(),
    }),
  ),
});

export function toDeploymentResponse(row: DeploymentRow): Static<typeof DeploymentSchema> {
  return {
    id: row.id,
    serviceId: row.service_id,
    environmentId: row.environment_id,
    releaseId: row.release_id,
    kind: row.kind,
    replicas: row.replicas,
    status: row.status,
    failureReason: row.failure_reason,
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    liveAt: row.live_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    statusUrl: `/v1/deployments/${row.id}`,
  };
}
