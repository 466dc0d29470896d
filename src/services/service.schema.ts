import { Type, type Static } from '@sinclair/typebox';
import { LABEL_PATTERN, Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { ServiceRow } from '../platform/db/schema.js';

const StartCommand = Type.String({
  minLength: 1,
  maxLength: 2000,
  description: 'a shell line, as in a Procfile',
});

export const BuildSettingsSchema = Type.Object(
  { startCommand: Type.Optional(StartCommand) },
  { additionalProperties: false },
);

const HealthCheckPath = Type.String({ minLength: 1, maxLength: 512, pattern: '^/[\\x21-\\x7e]*$' });

export const RuntimeSettingsInput = Type.Object(
  {
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    startCommand: Type.Optional(StartCommand),
    healthCheckPath: Type.Optional(HealthCheckPath),
    instances: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
  },
  { additionalProperties: false },
);

export const ServiceSchema = Type.Object({
  id: Uuid,
  projectId: Uuid,
  name: Type.String(),
  gitUrl: Type.String(),
  branch: Type.String(),
  build: Type.Object({ startCommand: Type.Optional(Type.String()) }),
  runtime: Type.Object({
    port: Type.Optional(Type.Integer()),
    startCommand: Type.Optional(Type.String()),
    healthCheckPath: Type.String(),
    instances: Type.Integer(),
  }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const GitRef = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: '^[A-Za-z0-9._/][A-Za-z0-9._/+@-]*$',
});

export const CreateServiceBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: LABEL_PATTERN }),
    gitUrl: Type.String({ minLength: 1, maxLength: 2048 }),
    branch: Type.Optional(GitRef),
    build: Type.Optional(BuildSettingsSchema),
    runtime: Type.Optional(RuntimeSettingsInput),
  },
  { additionalProperties: false },
);
export type CreateServiceBody = Static<typeof CreateServiceBody>;

export const UpdateServiceBody = Type.Object(
  {
    gitUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    branch: Type.Optional(GitRef),
    build: Type.Optional(BuildSettingsSchema),
    runtime: Type.Optional(RuntimeSettingsInput),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateServiceBody = Static<typeof UpdateServiceBody>;

export const Variables = Type.Object({
  variables: Type.Record(Type.String(), Type.String()),
  updatedAt: Nullable(Timestamp),
});

export const PutVariablesBody = Type.Object(
  {
    variables: Type.Record(Type.String({ maxLength: 255 }), Type.String({ maxLength: 65536 }), {
      maxProperties: 500,
    }),
  },
  { additionalProperties: false },
);

export { GitRef };

export function toServiceResponse(row: ServiceRow): Static<typeof ServiceSchema> {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    gitUrl: row.git_url,
    branch: row.branch,
    build: row.build,
    runtime: row.runtime,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
