import type { Logger } from 'pino';
import type { SecretScope } from './secret.tables.js';
import type { Trx } from '../platform/db/transaction.js';
import { auditInCurrentScope, auditInCurrentScopeIn } from '../audit/audit-context.js';
import { secretAccessToAudit } from '../audit/audit-sources.js';

/**
 * Every read and write of a secret passes through recordSecretAccess: who, which secret,
 * which version, what they did. It writes one structured log line and appends a hash-chained
 * audit event to the current request's (or job's) audit trail; writes use
 * recordSecretAccessIn, in the transaction of the write. Values never enter an event.
 */
export type SecretAction =
  | 'read'
  | 'write'
  | 'restore'
  | 'destroy'
  | 'delete'
  | 'deliver'
  | 'rotation.requested'
  | 'rotation.succeeded'
  | 'rotation.rolled_back';

export interface SecretAccessEvent {
  action: SecretAction;
  /** A user id, or `system` for Switchyard's own reads (delivering values to a workload). */
  actor: string;
  secretId: string;
  name: string;
  scope: SecretScope;
  version?: number;
  versions?: number[];
  requestId?: string;
  deploymentId?: string;
  rotationId?: string;
  reason?: string;
}

export function recordSecretAccess(logger: Logger, event: SecretAccessEvent): void {
  logger.info({ audit: 'secret.access', ...event }, 'secret accessed');
  auditInCurrentScope(secretAccessToAudit(event));
}

/** The same for a write, recorded in the transaction that makes it. */
export async function recordSecretAccessIn(
  trx: Trx,
  logger: Logger,
  event: SecretAccessEvent,
): Promise<void> {
  logger.info({ audit: 'secret.access', ...event }, 'secret accessed');
  await auditInCurrentScopeIn(trx, secretAccessToAudit(event));
}
