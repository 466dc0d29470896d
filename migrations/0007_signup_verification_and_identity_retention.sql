-- Sign-up with email verification, and indexes for purging identity rows past retention.

-- A sign-up waiting for its email address to be proved. No user exists until the token mailed
-- to the address is redeemed; the user is then created from this row, with this row's
-- password, so a later sign-up for the same address cannot change what an earlier link
-- activates. The token is stored as a SHA-256 and set when the mail is sent.
CREATE TABLE pending_sign_ups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL CHECK (email = lower(email) AND email <> ''),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  password_hash text NOT NULL CHECK (password_hash <> ''),
  token_hash text CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX pending_sign_ups_token_hash_key ON pending_sign_ups (token_hash);
CREATE INDEX pending_sign_ups_expires_at_idx ON pending_sign_ups (expires_at);

-- The retention purge finds expired and revoked rows by time.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX user_sessions_expires_at_idx ON user_sessions (expires_at);
CREATE INDEX user_sessions_revoked_at_idx ON user_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
