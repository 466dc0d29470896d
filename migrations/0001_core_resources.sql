-- Accounts, projects, services, builds, releases and deployments: the resources of a
-- running Switchyard. Every foreign key has an index; statuses and counts are checked here
-- so that no code path can store a value the application does not understand.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  password_hash text NOT NULL CHECK (password_hash <> ''),
  is_instance_admin boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_email_lowercase CHECK (email = lower(email) AND email <> '')
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- Refresh tokens: one row per issued token; a family is one sign-in and its rotations.
CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  refresh_token_hash text NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  user_agent text,
  client_ip text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sessions_refresh_token_hash_key ON sessions (refresh_token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_family_id_idx ON sessions (family_id);

-- Access tokens revoked before they expire (logout), by token id.
CREATE TABLE revoked_tokens (
  jti text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX projects_slug_key ON projects (slug);
CREATE INDEX projects_created_by_idx ON projects (created_by);
CREATE INDEX projects_created_at_id_idx ON projects (created_at, id);

CREATE TABLE environments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  kind text NOT NULL DEFAULT 'standard' CHECK (kind IN ('standard', 'preview')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX environments_project_id_name_key ON environments (project_id, name);
CREATE INDEX environments_project_id_created_at_idx ON environments (project_id, created_at, id);

CREATE TABLE project_members (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'readonly')),
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_id_idx ON project_members (user_id);
CREATE INDEX project_members_environment_id_idx ON project_members (environment_id);

CREATE TABLE services (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  git_url text NOT NULL CHECK (git_url <> ''),
  branch text NOT NULL CHECK (branch <> ''),
  build jsonb NOT NULL DEFAULT '{}',
  runtime jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX services_project_id_name_key ON services (project_id, name);
CREATE INDEX services_project_id_created_at_idx ON services (project_id, created_at, id);

-- Configuration variables: plain (non-secret) values delivered byte-exact.
CREATE TABLE service_variables (
  service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service_id, name)
);

CREATE TABLE builds (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  ref text NOT NULL CHECK (ref <> ''),
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  commit_sha text CHECK (commit_sha ~ '^[0-9a-f]{40}$'),
  failure_reason text,
  attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX builds_service_id_created_at_idx ON builds (service_id, created_at, id);
CREATE INDEX builds_created_by_idx ON builds (created_by);

CREATE TABLE build_logs (
  build_id uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  seq integer NOT NULL CHECK (seq >= 0),
  line text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (build_id, seq)
);

CREATE TABLE releases (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  build_id uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version >= 1),
  commit_sha text NOT NULL CHECK (commit_sha ~ '^[0-9a-f]{40}$'),
  digest text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  artifact_path text NOT NULL CHECK (artifact_path <> ''),
  kind text NOT NULL CHECK (kind IN ('node', 'procfile', 'static')),
  start_command jsonb NOT NULL,
  config_snapshot jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX releases_service_id_version_key ON releases (service_id, version);
-- A build may back several releases: a configuration change makes a new release of the
-- same artifact without rebuilding.
CREATE INDEX releases_build_id_idx ON releases (build_id);
CREATE INDEX releases_service_id_created_at_idx ON releases (service_id, created_at, id);

CREATE TABLE deployments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  environment_id uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
  release_id uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
  kind text NOT NULL DEFAULT 'deploy' CHECK (kind IN ('deploy', 'rollback', 'restart')),
  replicas integer NOT NULL CHECK (replicas >= 0 AND replicas <= 100),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'in_progress', 'live', 'failed', 'superseded', 'cancelled')),
  failure_reason text,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  live_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX deployments_service_id_created_at_idx ON deployments (service_id, created_at, id);
CREATE INDEX deployments_environment_id_idx ON deployments (environment_id);
CREATE INDEX deployments_release_id_idx ON deployments (release_id);
CREATE INDEX deployments_created_by_idx ON deployments (created_by);
CREATE INDEX deployments_status_idx ON deployments (status) WHERE status IN ('pending', 'in_progress', 'live');

-- Answers to POSTs that start work, replayed when a client retries with the same key.
CREATE TABLE idempotency_keys (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash text NOT NULL,
  status_code integer CHECK (status_code BETWEEN 100 AND 599),
  response_body jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
