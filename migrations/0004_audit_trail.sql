-- The audit trail: one hash-chained, append-only table of events, signed checkpoints of the
-- chain, and the outbox that feeds compliance sinks.
--
-- The chain is built by the database, not the application: a BEFORE INSERT trigger locks the
-- one row of audit_chain_head, gives the event the next sequence number and the previous
-- event's hash, and moves the head. The lock is held until the inserting transaction ends,
-- so the chain follows commit order and an event rolled back with its change leaves no gap.
-- An event whose id is already stored is skipped, which makes replays exactly-once.

CREATE TABLE audit_chain_head (
  id smallint PRIMARY KEY CHECK (id = 1),
  seq bigint NOT NULL CHECK (seq >= 0),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

-- content_hash is the SHA-256 of the event's canonical JSON (computed by the application);
-- hash = SHA-256(prev_hash || content_hash), both as lowercase hex text.
CREATE TABLE audit_events (
  id uuid PRIMARY KEY,
  seq bigint NOT NULL UNIQUE CHECK (seq >= 1),
  occurred_at timestamptz NOT NULL,
  actor_type text NOT NULL CHECK (actor_type IN ('user', 'api_token', 'anonymous', 'system')),
  actor_id uuid,
  actor_token_id uuid,
  actor_role text CHECK (actor_role IN ('owner', 'admin', 'developer', 'readonly', 'instance_admin')),
  action text NOT NULL CHECK (length(action) BETWEEN 1 AND 200),
  resource_type text CHECK (length(resource_type) <= 100),
  resource_id text CHECK (length(resource_id) <= 200),
  resource_name text CHECK (length(resource_name) <= 300),
  -- No foreign keys: events outlive the projects, users and tokens they name.
  project_id uuid,
  environment_id uuid,
  client_ip text CHECK (length(client_ip) <= 64),
  user_agent text CHECK (length(user_agent) <= 512),
  request_id text CHECK (length(request_id) <= 128),
  outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  diff jsonb,
  details jsonb,
  content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
  prev_hash text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE INDEX audit_events_project_id_seq_idx ON audit_events (project_id, seq);
CREATE INDEX audit_events_actor_id_seq_idx ON audit_events (actor_id, seq);
CREATE INDEX audit_events_action_seq_idx ON audit_events (action, seq);
CREATE INDEX audit_events_resource_seq_idx ON audit_events (resource_type, resource_id, seq);
CREATE INDEX audit_events_request_id_idx ON audit_events (request_id);

CREATE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  head audit_chain_head%ROWTYPE;
BEGIN
  SELECT * INTO STRICT head FROM audit_chain_head WHERE id = 1 FOR UPDATE;
  -- After the lock: a replayed event that is already stored is dropped, not chained twice.
  IF EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id) THEN
    RETURN NULL;
  END IF;
  NEW.seq := head.seq + 1;
  NEW.prev_hash := head.hash;
  NEW.hash := encode(sha256(convert_to(head.hash || NEW.content_hash, 'UTF8')), 'hex');
  UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_chain();

-- Append-only, for the table's owner too: updates, deletes and truncation are refused.
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_head_keep BEFORE DELETE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- A checkpoint: the chain's head at one moment, signed (compact JWS) with the platform key,
-- so an exported range can be checked offline against the public key alone.
CREATE TABLE audit_checkpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint NOT NULL CHECK (seq >= 1),
  hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  key_id text NOT NULL,
  signature text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_seq_idx ON audit_checkpoints (seq);

CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Compliance sinks: where events are delivered. Credentials (the HMAC signing secret and an
-- optional bearer token) are sealed with the Lockbox master key like secret values.
CREATE TABLE audit_sinks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  format text NOT NULL CHECK (format IN ('webhook', 'vanta', 'drata')),
  url text NOT NULL CHECK (length(url) <= 2048),
  -- Vanta's resource id or Drata's connection id, when the format needs one.
  target_id text CHECK (length(target_id) <= 200),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  max_attempts integer NOT NULL DEFAULT 12 CHECK (max_attempts BETWEEN 1 AND 100),
  batch_size integer NOT NULL DEFAULT 50 CHECK (batch_size BETWEEN 1 AND 500),
  credentials_key_id text NOT NULL,
  credentials_wrapped_key bytea NOT NULL,
  credentials_ciphertext bytea NOT NULL,
  -- Which process delivers for this sink, until when: one deliverer keeps the order.
  lease_owner text,
  lease_until timestamptz,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_sinks_created_by_idx ON audit_sinks (created_by);

-- One row per event per active sink, written by the database with the event itself.
CREATE TABLE audit_outbox (
  sink_id uuid NOT NULL REFERENCES audit_sinks (id) ON DELETE CASCADE,
  event_seq bigint NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text CHECK (length(last_error) <= 500),
  delivered_at timestamptz,
  PRIMARY KEY (sink_id, event_seq)
);
CREATE INDEX audit_outbox_pending_idx ON audit_outbox (sink_id, event_seq) WHERE state = 'pending';

CREATE FUNCTION audit_events_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_outbox (sink_id, event_seq)
  SELECT sink.id, inserted.seq
  FROM inserted CROSS JOIN audit_sinks AS sink
  WHERE sink.status = 'active';
  RETURN NULL;
END
$$;

CREATE TRIGGER audit_events_fan_out AFTER INSERT ON audit_events
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_fan_out();
