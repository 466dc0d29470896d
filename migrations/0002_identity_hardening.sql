-- Identity hardening: sign-ins become sessions of their own, revocations become one deny
-- list every replica reads, failed sign-ins are counted for lockout, and API tokens, single
-- sign-on identities and group-to-role mappings get tables.

-- A session is one sign-in. Its refresh tokens (rows of "sessions", one per rotation) carry
-- its id as their family_id; access tokens carry it as "sid".
CREATE TABLE user_sessions (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  method text NOT NULL DEFAULT 'password' CHECK (method IN ('password', 'oidc')),
  transport text NOT NULL DEFAULT 'bearer' CHECK (transport IN ('bearer', 'cookie')),
  csrf_token_hash text CHECK (csrf_token_hash ~ '^[0-9a-f]{64}$'),
  user_agent text,
  client_ip text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_reason text CHECK (
    revoked_reason IN ('logout', 'revoked', 'password_changed', 'user_disabled', 'refresh_reused', 'password_reset')
  ),
  CONSTRAINT user_sessions_cookie_has_csrf CHECK (transport = 'bearer' OR csrf_token_hash IS NOT NULL),
  CONSTRAINT user_sessions_revoked_has_reason CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX user_sessions_user_id_created_at_idx ON user_sessions (user_id, created_at, id);

INSERT INTO user_sessions (id, user_id, user_agent, client_ip, created_at, last_used_at, expires_at, revoked_at, revoked_reason)
SELECT
  family_id,
  (array_agg(user_id ORDER BY created_at DESC))[1],
  (array_agg(user_agent ORDER BY created_at DESC))[1],
  (array_agg(client_ip ORDER BY created_at DESC))[1],
  min(created_at),
  max(created_at),
  max(expires_at),
  max(revoked_at),
  CASE WHEN max(revoked_at) IS NULL THEN NULL ELSE 'revoked' END
FROM sessions
GROUP BY family_id;

ALTER TABLE sessions
  ADD CONSTRAINT sessions_family_id_fkey FOREIGN KEY (family_id) REFERENCES user_sessions (id) ON DELETE CASCADE;

-- The deny list: access tokens (by jti) and sessions (by sid) refused before they expire.
-- Rows are dropped once nothing they deny can still be valid.
CREATE TABLE auth_denials (
  kind text NOT NULL CHECK (kind IN ('token', 'session')),
  subject uuid NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, subject)
);
CREATE INDEX auth_denials_created_at_idx ON auth_denials (created_at);
CREATE INDEX auth_denials_expires_at_idx ON auth_denials (expires_at);

INSERT INTO auth_denials (kind, subject, expires_at)
SELECT 'token', jti::uuid, expires_at
FROM revoked_tokens
WHERE expires_at > now()
  AND jti ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
DROP TABLE revoked_tokens;

-- Consecutive failed sign-ins per account name (a SHA-256 of the normalised email), kept
-- alike for names with and without an account so lockout reveals nothing.
CREATE TABLE sign_in_failures (
  account_key text PRIMARY KEY CHECK (account_key ~ '^[0-9a-f]{64}$'),
  failures integer NOT NULL CHECK (failures >= 0),
  locked_until timestamptz,
  last_failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_last_failed_at_idx ON sign_in_failures (last_failed_at);

-- Personal access tokens: shown once, stored as a SHA-256, always expiring.
CREATE TABLE api_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  display_prefix text NOT NULL CHECK (display_prefix ~ '^syt_[A-Za-z0-9_-]{4,12}$'),
  scopes text[] NOT NULL CHECK (
    cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'deploy', 'write', 'secrets', 'admin']::text[]
  ),
  project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CONSTRAINT api_tokens_expire_after_creation CHECK (expires_at > created_at)
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_id_created_at_idx ON api_tokens (user_id, created_at, id);
CREATE INDEX api_tokens_project_id_idx ON api_tokens (project_id);

-- Accounts at an OpenID Connect provider, linked to Switchyard users.
CREATE TABLE user_identities (
  issuer text NOT NULL CHECK (issuer <> ''),
  subject text NOT NULL CHECK (subject <> ''),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_sign_in_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);

-- Identity-provider groups whose members get a role in a project at single sign-on.
CREATE TABLE project_group_roles (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  group_name text NOT NULL CHECK (length(group_name) BETWEEN 1 AND 200),
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'readonly')),
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, group_name)
);
CREATE INDEX project_group_roles_environment_id_idx ON project_group_roles (environment_id);
CREATE INDEX project_group_roles_group_name_idx ON project_group_roles (group_name);

-- Who granted a membership: a person through the members API, or single sign-on from the
-- user's groups (those are re-synchronised at every sign-in).
ALTER TABLE project_members
  ADD COLUMN granted_by text NOT NULL DEFAULT 'manual' CHECK (granted_by IN ('manual', 'oidc'));
