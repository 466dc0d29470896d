import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Trx } from '../platform/db/transaction.js';
import type { Actor, AuditEventInput, RequestFacts } from './audit-event.js';
import { SYSTEM_ACTOR } from './audit-event.js';

/** The part of the recorder a scope needs: in a transaction, or queued off the request path. */
export interface ScopedRecorder {
  record(input: AuditEventInput): unknown;
  recordIn(trx: Trx, input: AuditEventInput): Promise<unknown>;
}

/**
 * What the audit trail knows about the work in progress: the request (or job) and who does
 * it. The HTTP hooks open one per request and the job runner one per job, and it travels
 * with the async context, so the free functions other domains already call for their
 * security and secret events (recordSecurityEvent, recordSecretAccess) reach the audit trail
 * without a recorder threaded through every signature.
 */
export interface AuditScope {
  recorder: ScopedRecorder;
  facts: RequestFacts;
  actor: Actor;
  /**
   * The id of the request's own event. The first event recorded in the request takes it; a
   * failure event written after a rolled-back change reuses it, so at most one of the two is
   * stored (the chain skips an id it has).
   */
  primaryId: string;
  /** True once an event took primaryId. */
  hasPrimary: boolean;
  /** True when the event holding primaryId was written in a transaction that may roll back. */
  isPrimaryTentative: boolean;
  /** That event, so a failure event can say what was attempted. */
  tentativeEvent?: AuditEventInput;
  /** The client error the request ended with, if any (set by the error hook). */
  error?: { code: string; role?: string };
}

const storage = new AsyncLocalStorage<AuditScope>();

export function currentAuditScope(): AuditScope | undefined {
  return storage.getStore();
}

export function openAuditScope(
  recorder: ScopedRecorder,
  facts: RequestFacts,
  actor: Actor = SYSTEM_ACTOR,
): AuditScope {
  return {
    recorder,
    facts,
    actor,
    primaryId: randomUUID(),
    hasPrimary: false,
    isPrimaryTentative: false,
  };
}

/** Runs `fn` (and everything it starts) inside `scope`. */
export function runInAuditScope<T>(scope: AuditScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The id the next event of the current scope takes. */
export function takeEventId(scope: AuditScope | undefined, tentative: boolean): string {
  if (scope === undefined || scope.hasPrimary) return randomUUID();
  scope.hasPrimary = true;
  scope.isPrimaryTentative = tentative;
  return scope.primaryId;
}

/**
 * Hands an event to the audit trail of the current request or job. Outside of one (start-up,
 * scripts) there is no trail to write to, and the caller's log line is the record.
 */
export function auditInCurrentScope(input: AuditEventInput): boolean {
  const scope = storage.getStore();
  if (scope === undefined) return false;
  scope.recorder.record(input);
  return true;
}

/** The same, in `trx`: the event commits or rolls back with the change it records. */
export async function auditInCurrentScopeIn(trx: Trx, input: AuditEventInput): Promise<boolean> {
  const scope = storage.getStore();
  if (scope === undefined) return false;
  await scope.recorder.recordIn(trx, input);
  return true;
}
