-- Lockbox: secrets scoped to a project, an environment or a service, every write a new
-- version. Values live encrypted in secret_versions (the built-in store) or in Vault (then
-- only the version's number there is kept here). Deployments pin the versions they run, so
-- a restart brings back exactly what was verified healthy, and a rotation can roll forward
-- and back between two known sets of values.

CREATE TABLE secrets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  service_id uuid REFERENCES services (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,254}$'),
  backend text NOT NULL CHECK (backend IN ('builtin', 'vault')),
  current_version integer NOT NULL CHECK (current_version >= 1),
  latest_version integer NOT NULL CHECK (latest_version >= current_version),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- A secret has one scope: the project, one environment, or one service.
  CONSTRAINT secrets_one_scope CHECK (environment_id IS NULL OR service_id IS NULL)
);
CREATE UNIQUE INDEX secrets_project_name_key ON secrets (project_id, name)
  WHERE environment_id IS NULL AND service_id IS NULL;
CREATE UNIQUE INDEX secrets_environment_name_key ON secrets (environment_id, name)
  WHERE environment_id IS NOT NULL;
CREATE UNIQUE INDEX secrets_service_name_key ON secrets (service_id, name)
  WHERE service_id IS NOT NULL;
CREATE INDEX secrets_project_id_created_at_idx ON secrets (project_id, created_at, id);
CREATE INDEX secrets_environment_id_idx ON secrets (environment_id);
CREATE INDEX secrets_service_id_idx ON secrets (service_id);
CREATE INDEX secrets_created_by_idx ON secrets (created_by);

-- pending: written by a rotation that has not finished; rolled_back: a rotation undid it.
CREATE TABLE secret_versions (
  secret_id uuid NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version integer NOT NULL CHECK (version >= 1),
  state text NOT NULL DEFAULT 'active'
    CHECK (state IN ('pending', 'active', 'superseded', 'rolled_back', 'destroyed')),
  -- Built-in store: the data key wrapped by master key `key_id`, and the sealed value.
  key_id text,
  wrapped_key bytea,
  ciphertext bytea,
  -- Vault store: the KV v2 version holding this one.
  backend_version integer CHECK (backend_version >= 1),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  destroyed_at timestamptz,
  PRIMARY KEY (secret_id, version),
  CONSTRAINT secret_versions_sealed CHECK (
    state = 'destroyed'
    OR backend_version IS NOT NULL
    OR (key_id IS NOT NULL AND wrapped_key IS NOT NULL AND ciphertext IS NOT NULL)
  )
);
CREATE INDEX secret_versions_key_id_idx ON secret_versions (key_id) WHERE key_id IS NOT NULL;
CREATE INDEX secret_versions_created_by_idx ON secret_versions (created_by);

-- The secret versions a deployment runs with ({"<secret id>": version}); fixed once chosen.
CREATE TABLE deployment_secrets (
  deployment_id uuid PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
  versions jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A rotation: write a new version, roll the affected deployments, verify health; or undo.
CREATE TABLE secret_rotations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  secret_id uuid NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  state text NOT NULL DEFAULT 'requested'
    CHECK (state IN ('requested', 'written', 'rolling', 'verifying', 'succeeded',
                     'rolling_back', 'rolled_back')),
  failure_reason text,
  previous_version integer CHECK (previous_version >= 1),
  new_version integer CHECK (new_version >= 1),
  -- A supplied value waits here, sealed like any stored value, until the job writes it.
  staged_key_id text,
  staged_wrapped_key bytea,
  staged_ciphertext bytea,
  generate_bytes integer CHECK (generate_bytes BETWEEN 16 AND 1024),
  -- Which process works on it ("host:pid:boot"), and when it last showed progress.
  runner text,
  heartbeat_at timestamptz,
  requested_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  CONSTRAINT secret_rotations_value_source CHECK (
    state <> 'requested' OR staged_ciphertext IS NOT NULL OR generate_bytes IS NOT NULL
  )
);
CREATE INDEX secret_rotations_secret_id_created_at_idx
  ON secret_rotations (secret_id, created_at, id);
CREATE INDEX secret_rotations_requested_by_idx ON secret_rotations (requested_by);
CREATE INDEX secret_rotations_unfinished_idx ON secret_rotations (state)
  WHERE state NOT IN ('succeeded', 'rolled_back');
-- At most one rotation of a secret runs at a time.
CREATE UNIQUE INDEX secret_rotations_one_running_key ON secret_rotations (secret_id)
  WHERE state NOT IN ('succeeded', 'rolled_back');

-- The deployments a rotation touched: the one live before, the one it started, and the one
-- that restored the previous values when it rolled back.
CREATE TABLE secret_rotation_targets (
  rotation_id uuid NOT NULL REFERENCES secret_rotations (id) ON DELETE CASCADE,
  service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
  environment_id uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
  previous_deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  new_deployment_id uuid REFERENCES deployments (id) ON DELETE SET NULL,
  restore_deployment_id uuid REFERENCES deployments (id) ON DELETE SET NULL,
  PRIMARY KEY (rotation_id, service_id, environment_id)
);
CREATE INDEX secret_rotation_targets_service_id_idx ON secret_rotation_targets (service_id);
CREATE INDEX secret_rotation_targets_environment_id_idx ON secret_rotation_targets (environment_id);
CREATE INDEX secret_rotation_targets_previous_idx ON secret_rotation_targets (previous_deployment_id);
CREATE INDEX secret_rotation_targets_new_idx ON secret_rotation_targets (new_deployment_id);
CREATE INDEX secret_rotation_targets_restore_idx ON secret_rotation_targets (restore_deployment_id);
