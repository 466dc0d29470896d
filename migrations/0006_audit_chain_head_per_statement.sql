-- The chain trigger of 0004 moved the head row once per event. In a multi-row insert (the
-- batched writer stores hundreds of events per statement) that leaves one row version per
-- event to step over, which made batches several times slower on PGlite. Now the head
-- travels from event to event in a transaction-local setting, and is written back to
-- audit_chain_head once per statement. The head row is still locked by the first event of
-- the transaction until it commits or rolls back, so the chain still follows commit order;
-- a savepoint rolled back reverts the setting with the events it covered.

CREATE OR REPLACE FUNCTION audit_events_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  carried text := current_setting('switchyard.audit_head', true);
  head_seq bigint;
  head_hash text;
BEGIN
  IF carried IS NULL OR carried = '' THEN
    SELECT seq, hash INTO STRICT head_seq, head_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    PERFORM set_config('switchyard.audit_head', head_seq || ':' || head_hash, true);
  ELSE
    head_seq := split_part(carried, ':', 1)::bigint;
    head_hash := split_part(carried, ':', 2);
  END IF;
  -- Under the lock: a replayed event that is already stored is dropped, not chained twice.
  IF EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id) THEN
    RETURN NULL;
  END IF;
  NEW.seq := head_seq + 1;
  NEW.prev_hash := head_hash;
  NEW.hash := encode(sha256(convert_to(head_hash || NEW.content_hash, 'UTF8')), 'hex');
  PERFORM set_config('switchyard.audit_head', NEW.seq || ':' || NEW.hash, true);
  RETURN NEW;
END
$$;

CREATE FUNCTION audit_chain_head_save() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  carried text := current_setting('switchyard.audit_head', true);
BEGIN
  IF carried IS NOT NULL AND carried <> '' THEN
    UPDATE audit_chain_head
    SET seq = split_part(carried, ':', 1)::bigint, hash = split_part(carried, ':', 2)
    WHERE id = 1;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER audit_events_chain_head AFTER INSERT ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_save();
