import type { ColumnType, Generated, Kysely, Selectable, Transaction } from 'kysely';
import type { Schema } from '../platform/db/schema.js';

/**
 * Lockbox's tables (migrations/0003_lockbox_secrets.sql), added to the shared schema with
 * `withTables` so the domain keeps its types beside its code.
 *
 * Glossary
 * - secret: a named value in one scope — a project, one of its environments, or a service.
 * - version: one value of a secret; every write makes the next one. The current version is
 *   what new deployments get; any other version stays readable until it is destroyed.
 * - pin: the versions a deployment runs with, chosen once, so a restart reproduces it.
 * - rotation: a new version rolled out to every deployment that uses the secret, verified
 *   healthy, or undone as a whole.
 */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type SecretBackendName = 'builtin' | 'vault';
export type SecretVersionState = 'pending' | 'active' | 'superseded' | 'rolled_back' | 'destroyed';
export type RotationState =
  'requested' | 'written' | 'rolling' | 'verifying' | 'succeeded' | 'rolling_back' | 'rolled_back';

export interface SecretsTable {
  id: Generated<string>;
  project_id: string;
  environment_id: string | null;
  service_id: string | null;
  name: string;
  backend: SecretBackendName;
  current_version: number;
  latest_version: number;
  created_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface SecretVersionsTable {
  secret_id: string;
  version: number;
  state: Generated<SecretVersionState>;
  key_id: string | null;
  wrapped_key: Buffer | null;
  ciphertext: Buffer | null;
  backend_version: number | null;
  created_by: string | null;
  created_at: Generated<Date>;
  destroyed_at: Timestamp | null;
}

export interface DeploymentSecretsTable {
  deployment_id: string;
  versions: ColumnType<Record<string, number>, string, string>;
  created_at: Generated<Date>;
}

export interface SecretRotationsTable {
  id: Generated<string>;
  secret_id: string;
  state: Generated<RotationState>;
  failure_reason: string | null;
  previous_version: number | null;
  new_version: number | null;
  staged_key_id: string | null;
  staged_wrapped_key: Buffer | null;
  staged_ciphertext: Buffer | null;
  generate_bytes: number | null;
  runner: string | null;
  heartbeat_at: Timestamp | null;
  requested_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
  finished_at: Timestamp | null;
}

export interface SecretRotationTargetsTable {
  rotation_id: string;
  service_id: string;
  environment_id: string;
  previous_deployment_id: string;
  new_deployment_id: string | null;
  restore_deployment_id: string | null;
}

export type LockboxTables = {
  secrets: SecretsTable;
  secret_versions: SecretVersionsTable;
  deployment_secrets: DeploymentSecretsTable;
  secret_rotations: SecretRotationsTable;
  secret_rotation_targets: SecretRotationTargetsTable;
};

export type LockboxSchema = Schema & LockboxTables;
export type LockboxDb = Kysely<LockboxSchema>;
export type LockboxTrx = Transaction<LockboxSchema>;

export type SecretRow = Selectable<SecretsTable>;
export type SecretVersionRow = Selectable<SecretVersionsTable>;
export type RotationRow = Selectable<SecretRotationsTable>;
export type RotationTargetRow = Selectable<SecretRotationTargetsTable>;

/** Where a secret lives; exactly one of environmentId and serviceId may be set. */
export type SecretScope =
  | { kind: 'project'; projectId: string }
  | { kind: 'environment'; projectId: string; environmentId: string }
  | { kind: 'service'; projectId: string; serviceId: string };

export function scopeOf(row: SecretRow): SecretScope {
  if (row.environment_id !== null) {
    return { kind: 'environment', projectId: row.project_id, environmentId: row.environment_id };
  }
  if (row.service_id !== null)
    return { kind: 'service', projectId: row.project_id, serviceId: row.service_id };
  return { kind: 'project', projectId: row.project_id };
}

/** Narrower scopes win when a workload's variables are assembled. */
export const SCOPE_PRECEDENCE: Record<SecretScope['kind'], number> = {
  project: 1,
  environment: 2,
  service: 3,
};
