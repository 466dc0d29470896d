import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** Columns the database fills in on insert. */
type Auto<T> = Generated<T>;
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export type Role = 'owner' | 'admin' | 'developer' | 'readonly';
export type BuildStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type DeploymentStatus =
  'pending' | 'in_progress' | 'live' | 'failed' | 'superseded' | 'cancelled';
export type DeploymentKind = 'deploy' | 'rollback' | 'restart';
export type ArtifactKind = 'node' | 'procfile' | 'static';

export interface BuildSettings {
  /** Overrides the detected start command; a shell line, as in a Procfile. */
  startCommand?: string;
}

export interface RuntimeSettings {
  port?: number;
  startCommand?: string;
  healthCheckPath: string;
  instances: number;
}

export interface StartCommandJson {
  command: string;
  args: string[];
}

export interface UsersTable {
  id: Auto<string>;
  email: string;
  name: string;
  password_hash: string;
  is_instance_admin: Auto<boolean>;
  status: Auto<'active' | 'disabled'>;
  created_at: Auto<Date>;
  updated_at: Auto<Date>;
}

export interface SessionsTable {
  id: Auto<string>;
  user_id: string;
  family_id: string;
  refresh_token_hash: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  revoked_at: Timestamp | null;
  user_agent: string | null;
  client_ip: string | null;
  created_at: Auto<Date>;
}

export interface ProjectsTable {
  id: Auto<string>;
  slug: string;
  name: string;
  status: Auto<'active' | 'archived'>;
  created_by: string | null;
  created_at: Auto<Date>;
  updated_at: Auto<Date>;
  /** The project's own number: its workloads run as user SWITCHYARD_WORKLOAD_UID_BASE + it. */
  workload_slot: Auto<number>;
}

export interface EnvironmentsTable {
  id: Auto<string>;
  project_id: string;
  name: string;
  kind: Auto<'standard' | 'preview'>;
  created_at: Auto<Date>;
  updated_at: Auto<Date>;
}

export interface ProjectMembersTable {
  project_id: string;
  user_id: string;
  role: Role;
  environment_id: string | null;
  expires_at: Timestamp | null;
  created_at: Auto<Date>;
}

/** Migration 0008: a grant waiting for an account with its email address. */
export interface ProjectInvitationsTable {
  id: Auto<string>;
  project_id: string;
  email: string;
  role: Role;
  environment_id: string | null;
  expires_at: Timestamp | null;
  invite_expires_at: Timestamp;
  invited_by: string | null;
  created_at: Auto<Date>;
}

export interface ServicesTable {
  id: Auto<string>;
  project_id: string;
  name: string;
  git_url: string;
  branch: string;
  build: Json<BuildSettings>;
  runtime: Json<RuntimeSettings>;
  created_at: Auto<Date>;
  updated_at: Auto<Date>;
}

export interface ServiceVariablesTable {
  service_id: string;
  name: string;
  value: string;
  updated_at: Auto<Date>;
}

export interface BuildsTable {
  id: Auto<string>;
  service_id: string;
  ref: string;
  status: Auto<BuildStatus>;
  commit_sha: string | null;
  failure_reason: string | null;
  attempt: Auto<number>;
  created_by: string | null;
  created_at: Auto<Date>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  worker_id: string | null;
}

export interface BuildLogsTable {
  build_id: string;
  seq: number;
  line: string;
  created_at: Auto<Date>;
}

export interface ReleasesTable {
  id: Auto<string>;
  service_id: string;
  build_id: string;
  version: number;
  commit_sha: string;
  digest: string;
  artifact_path: string;
  kind: ArtifactKind;
  start_command: Json<StartCommandJson>;
  config_snapshot: Json<Record<string, string>>;
  created_at: Auto<Date>;
}

export interface DeploymentsTable {
  id: Auto<string>;
  service_id: string;
  environment_id: string;
  release_id: string;
  kind: Auto<DeploymentKind>;
  replicas: number;
  status: Auto<DeploymentStatus>;
  failure_reason: string | null;
  created_by: string | null;
  created_at: Auto<Date>;
  started_at: Timestamp | null;
  live_at: Timestamp | null;
  finished_at: Timestamp | null;
  worker_id: string | null;
}

export interface IdempotencyKeysTable {
  user_id: string;
  key: string;
  request_hash: string;
  status_code: number | null;
  response_body: Json<unknown> | null;
  created_at: Auto<Date>;
}

export interface LeasesTable {
  name: string;
  holder: string;
  acquired_at: Auto<Date>;
  expires_at: Timestamp;
}

export interface WorkerHeartbeatsTable {
  id: string;
  hostname: string;
  pid: number;
  role: 'all' | 'api' | 'worker';
  started_at: Auto<Date>;
  heartbeat_at: Auto<Date>;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: Auto<Date>;
}

export interface Schema {
  users: UsersTable;
  sessions: SessionsTable;
  projects: ProjectsTable;
  environments: EnvironmentsTable;
  project_members: ProjectMembersTable;
  project_invitations: ProjectInvitationsTable;
  services: ServicesTable;
  service_variables: ServiceVariablesTable;
  builds: BuildsTable;
  build_logs: BuildLogsTable;
  releases: ReleasesTable;
  deployments: DeploymentsTable;
  idempotency_keys: IdempotencyKeysTable;
  schema_migrations: SchemaMigrationsTable;
  leases: LeasesTable;
  worker_heartbeats: WorkerHeartbeatsTable;
}

export type UserRow = Selectable<UsersTable>;
export type ProjectRow = Selectable<ProjectsTable>;
export type EnvironmentRow = Selectable<EnvironmentsTable>;
export type MemberRow = Selectable<ProjectMembersTable>;
export type InvitationRow = Selectable<ProjectInvitationsTable>;
export type ServiceRow = Selectable<ServicesTable>;
export type BuildRow = Selectable<BuildsTable>;
export type ReleaseRow = Selectable<ReleasesTable>;
export type DeploymentRow = Selectable<DeploymentsTable>;
export type NewDeployment = Insertable<DeploymentsTable>;
