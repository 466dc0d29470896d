-- Many replicas, one reconciler: a lease names the process that runs deployments, and
-- heartbeats tell which workers are alive, so work claimed by a dead one is taken over.

CREATE TABLE leases (
  name text PRIMARY KEY CHECK (name <> ''),
  holder text NOT NULL CHECK (holder <> ''),
  acquired_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE TABLE worker_heartbeats (
  id text PRIMARY KEY CHECK (id <> ''),
  hostname text NOT NULL,
  pid integer NOT NULL CHECK (pid > 0),
  role text NOT NULL CHECK (role IN ('all', 'api', 'worker')),
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_heartbeats_heartbeat_at_idx ON worker_heartbeats (heartbeat_at);

-- The worker that claimed a running build or deployment (no foreign key: heartbeat rows of
-- dead workers are deleted, and the claim must outlive them to be recognised as orphaned).
ALTER TABLE builds ADD COLUMN worker_id text;
ALTER TABLE deployments ADD COLUMN worker_id text;
CREATE INDEX builds_running_idx ON builds (status) WHERE status = 'running';
CREATE INDEX deployments_in_progress_idx ON deployments (status) WHERE status = 'in_progress';
