-- Invitations: a grant offered to an email address that has no account yet. Adding a member
-- by email answers the same whether or not the address has an account; when it has none,
-- this row waits until an account with that address is created, and then becomes the
-- membership it describes (in the transaction that creates the account). Rows past
-- invite_expires_at are never claimed.
CREATE TABLE project_invitations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  email text NOT NULL CHECK (email = lower(email) AND email <> ''),
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'readonly')),
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  expires_at timestamptz,
  invite_expires_at timestamptz NOT NULL,
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, email)
);
CREATE INDEX project_invitations_email_idx ON project_invitations (email);
CREATE INDEX project_invitations_environment_id_idx ON project_invitations (environment_id);
CREATE INDEX project_invitations_invited_by_idx ON project_invitations (invited_by);
