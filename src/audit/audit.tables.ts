import type { ColumnType, Generated, Kysely, Selectable, Transaction } from 'kysely';
import type { Schema } from '../platform/db/schema.js';
import type { Db } from '../platform/db/transaction.js';

/**
 * The audit trail's tables (migrations/0004_audit_trail.sql), added to the shared schema with
 * `withTables` so the domain keeps its types beside its code.
 *
 * Glossary
 * - event: one recorded fact — who (actor, with their role at the time) did what (action) to
 *   what (resource), from where (client address, user agent, request id), with what outcome.
 * - chain: every event stores the hash of its content and of the event before it; the
 *   database assigns the sequence number and the hashes, so the chain follows commit order.
 * - checkpoint: the chain's head (sequence number and hash) signed with the platform key.
 * - spool: a local file where events wait, synced to disk, while the database cannot take them.
 * - sink: an outside system events are delivered to (a signed webhook, Vanta, Drata).
 * - outbox: one row per event per sink, written with the event, removed from nothing: its
 *   state says pending, delivered or dead (given up after the sink's attempts ran out).
 */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export type ActorType = 'user' | 'api_token' | 'anonymous' | 'system';
export type ActorRole = 'owner' | 'admin' | 'developer' | 'readonly' | 'instance_admin';
export type Outcome = 'success' | 'failure' | 'denied';
export type SinkFormat = 'webhook' | 'vanta' | 'drata';
export type OutboxState = 'pending' | 'delivered' | 'dead';

export interface AuditEventsTable {
  id: string;
  /** Assigned by the chain trigger; an insert leaves it out. */
  seq: ColumnType<number, never, never>;
  occurred_at: Timestamp;
  actor_type: ActorType;
  actor_id: string | null;
  actor_token_id: string | null;
  actor_role: ActorRole | null;
  action: string;
  resource_type: string | null;
  resource_id: string | null;
  resource_name: string | null;
  project_id: string | null;
  environment_id: string | null;
  client_ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  outcome: Outcome;
  diff: Json<unknown> | null;
  details: Json<unknown> | null;
  content_hash: string;
  prev_hash: ColumnType<string, never, never>;
  hash: ColumnType<string, never, never>;
}

export interface AuditChainHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface AuditCheckpointsTable {
  id: Generated<string>;
  seq: number;
  hash: string;
  key_id: string;
  signature: string;
  created_at: Generated<Date>;
}

export interface AuditSinksTable {
  id: Generated<string>;
  name: string;
  format: SinkFormat;
  url: string;
  target_id: string | null;
  status: Generated<'active' | 'paused'>;
  max_attempts: Generated<number>;
  batch_size: Generated<number>;
  credentials_key_id: string;
  credentials_wrapped_key: Buffer;
  credentials_ciphertext: Buffer;
  lease_owner: string | null;
  lease_until: Timestamp | null;
  created_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface AuditOutboxTable {
  sink_id: string;
  event_seq: number;
  state: Generated<OutboxState>;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  last_error: string | null;
  delivered_at: Timestamp | null;
}

export type AuditTables = {
  audit_events: AuditEventsTable;
  audit_chain_head: AuditChainHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_sinks: AuditSinksTable;
  audit_outbox: AuditOutboxTable;
};

export type AuditSchema = Schema & AuditTables;
export type AuditDb = Kysely<AuditSchema>;
export type AuditTrx = Transaction<AuditSchema>;

export type AuditEventRow = Selectable<AuditEventsTable>;
export type CheckpointRow = Selectable<AuditCheckpointsTable>;
export type SinkRow = Selectable<AuditSinksTable>;
export type OutboxRow = Selectable<AuditOutboxTable>;

/** The shared handle (or a transaction on it) typed with the audit tables. */
export function auditDb(db: Db): AuditDb {
  return db.withTables<AuditTables>();
}
