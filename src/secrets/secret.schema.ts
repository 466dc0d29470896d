import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type {
  RotationRow,
  RotationTargetRow,
  SecretRow,
  SecretVersionRow,
} from './secret.tables.js';

const SecretName = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
});

export const SecretNameParams = Type.Object({ name: SecretName });

/** A version number as the database stores it (integer, so at most 2^31 - 1). */
const Version = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });

/** Metadata only: a secret's value is never part of this shape. */
export const SecretSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  scope: Type.Union([
    Type.Literal('project'),
    Type.Literal('environment'),
    Type.Literal('service'),
  ]),
  environmentId: Nullable(Uuid),
  serviceId: Nullable(Uuid),
  currentVersion: Type.Integer(),
  latestVersion: Type.Integer(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const SecretVersionSchema = Type.Object({
  version: Type.Integer(),
  state: Type.String(),
  isCurrent: Type.Boolean(),
  createdBy: Nullable(Uuid),
  createdAt: Timestamp,
  destroyedAt: Nullable(Timestamp),
});

export const SecretVersions = Type.Object({
  name: Type.String(),
  currentVersion: Type.Integer(),
  data: Type.Array(SecretVersionSchema),
});

/**
 * A value as text (`value`, UTF-8) or as bytes (`valueBase64`); exactly one. Reading answers
 * with both when the bytes are valid UTF-8, and with `valueBase64` alone otherwise.
 */
export const SecretValueBody = Type.Object(
  {
    value: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536 })),
    valueBase64: Type.Optional(
      Type.String({ minLength: 1, maxLength: 87_384, pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
    ),
  },
  { additionalProperties: false },
);
export type SecretValueBody = Static<typeof SecretValueBody>;

export const SecretValue = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  isCurrent: Type.Boolean(),
  value: Type.Optional(Type.String()),
  valueBase64: Type.String(),
});

export const VersionQuery = Type.Object(
  { version: Type.Optional(Version) },
  { additionalProperties: false },
);
export const RestoreBody = Type.Object({ version: Version }, { additionalProperties: false });
export const DestroyBody = Type.Object(
  { versions: Type.Array(Version, { minItems: 1, maxItems: 100 }) },
  { additionalProperties: false },
);
export const Destroyed = Type.Object({ destroyed: Type.Array(Type.Integer()) });

/** A new value supplied (text or base64), or generated: `generateBytes` random bytes, base64url. */
export const RotateBody = Type.Object(
  {
    value: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536 })),
    valueBase64: Type.Optional(
      Type.String({ minLength: 1, maxLength: 87_384, pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
    ),
    generateBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 1024 })),
  },
  { additionalProperties: false },
);
export type RotateBody = Static<typeof RotateBody>;

export const RotationSchema = Type.Object({
  id: Uuid,
  secretId: Uuid,
  state: Type.String(),
  failureReason: Nullable(Type.String()),
  previousVersion: Nullable(Type.Integer()),
  newVersion: Nullable(Type.Integer()),
  createdAt: Timestamp,
  finishedAt: Nullable(Timestamp),
  targets: Type.Array(
    Type.Object({
      serviceId: Uuid,
      environmentId: Uuid,
      previousDeploymentId: Uuid,
      newDeploymentId: Nullable(Uuid),
      restoreDeploymentId: Nullable(Uuid),
    }),
  ),
  statusUrl: Type.String(),
});

export function toSecretResponse(row: SecretRow): Static<typeof SecretSchema> {
  const scope =
    row.environment_id !== null ? 'environment' : row.service_id !== null ? 'service' : 'project';
  return {
    id: row.id,
    name: row.name,
    scope,
    environmentId: row.environment_id,
    serviceId: row.service_id,
    currentVersion: row.current_version,
    latestVersion: row.latest_version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export function toVersionResponse(
  row: SecretVersionRow,
  secret: SecretRow,
): Static<typeof SecretVersionSchema> {
  return {
    version: row.version,
    state: row.state,
    isCurrent: row.version === secret.current_version,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    destroyedAt: row.destroyed_at === null ? null : new Date(row.destroyed_at).toISOString(),
  };
}

export function toRotationResponse(
  row: RotationRow,
  targets: RotationTargetRow[],
): Static<typeof RotationSchema> {
  return {
    id: row.id,
    secretId: row.secret_id,
    state: row.state,
    failureReason: row.failure_reason,
    previousVersion: row.previous_version,
    newVersion: row.new_version,
    createdAt: row.created_at.toISOString(),
    finishedAt: row.finished_at === null ? null : new Date(row.finished_at).toISOString(),
    targets: targets.map((target) => ({
      serviceId: target.service_id,
      environmentId: target.environment_id,
      previousDeploymentId: target.previous_deployment_id,
      newDeploymentId: target.new_deployment_id,
      restoreDeploymentId: target.restore_deployment_id,
    })),
    statusUrl: `/v1/secret-rotations/${row.id}`,
  };
}

/** The bytes a value body carries; exactly one of its two fields must be set. */
export function valueOfBody(body: {
  value?: string | undefined;
  valueBase64?: string | undefined;
}): Buffer | undefined {
  if (body.value !== undefined && body.valueBase64 !== undefined) return undefined;
  if (body.value !== undefined) return Buffer.from(body.value, 'utf8');
  if (body.valueBase64 !== undefined) return Buffer.from(body.valueBase64, 'base64');
  return undefined;
}

/** Both encodings when the bytes are valid UTF-8, base64 alone otherwise. */
export function encodeValue(value: Buffer): { value?: string; valueBase64: string } {
  const text = value.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(value);
  return { ...(isText ? { value: text } : {}), valueBase64: value.toString('base64') };
}
