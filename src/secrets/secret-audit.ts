import type { Logger } from 'pino';
import type { SecretScope } from './secret.tables.js';

/**
 * Every read and write of a secret passes through recordSecretAccess: who, which secret,
 * which version, what they did. Today it writes one structured log line; the audit log work
 * will extend this one function to append hash-chained audit events, so no caller changes.
 * Values never enter an event.
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
}
