import type { Logger } from 'pino';
import type { RevokeReason, Scope } from './auth.tables.js';
import type { Role } from '../platform/db/schema.js';
import { auditInCurrentScope } from '../audit/audit-context.js';
import { securityEventToAudit } from '../audit/audit-sources.js';

/**
 * Everything that changes who may do what, or shows someone trying: sign-ins and their
 * failures, lockouts, credentials issued or revoked, role changes. Each is logged here with
 * stable fields; the audit trail extends recordSecurityEvent to append them there as well.
 */
export type SecurityEvent =
  | { type: 'sign_in.succeeded'; userId: string; sessionId: string; method: 'password' | 'oidc' }
  | { type: 'sign_in.failed'; reason: 'bad_credentials' | 'disabled' | 'oidc_refused' }
  | { type: 'sign_in.locked_out'; lockedForSeconds: number }
  | {
      type: 'sign_in.rate_limited';
      action: 'login' | 'refresh' | 'register';
      limit: 'address' | 'account';
    }
  | { type: 'refresh_token.reused'; userId: string; sessionId: string }
  | { type: 'session.revoked'; userId: string; sessionIds: string[]; reason: RevokeReason }
  | { type: 'csrf.rejected'; userId: string; sessionId: string }
  | { type: 'password.changed'; userId: string; byAdmin: boolean }
  | { type: 'user.disabled'; userId: string; byUserId: string }
  | { type: 'user.enabled'; userId: string; byUserId: string }
  | {
      type: 'user.created';
      userId: string;
      via: 'sign_up' | 'verified_sign_up' | 'admin';
      byUserId: string | null;
    }
  /** A sign-up named an address that has an account: nothing was created. */
  | { type: 'sign_up.email_taken'; userId: string | null }
  | { type: 'sign_up.token_refused'; reason: 'unknown' | 'used' | 'expired' }
  | {
      type: 'api_token.created';
      userId: string;
      apiTokenId: string;
      scopes: Scope[];
      projectId: string | null;
    }
  | { type: 'api_token.revoked'; userId: string; apiTokenId: string }
  | {
      type: 'member.changed';
      projectId: string;
      memberId: string;
      byUserId: string;
      change: 'added' | 'role_changed' | 'removed';
      role: Role | null;
      source: 'api' | 'oidc';
    };

/** Where the event happened: the client and the request, when there is one. */
export interface SecurityEventContext {
  clientIp?: string | undefined;
  requestId?: string | undefined;
}

// Events a person should look at; the rest are the ordinary record of access.
const WARN: ReadonlySet<SecurityEvent['type']> = new Set([
  'refresh_token.reused',
  'sign_in.locked_out',
  'csrf.rejected',
]);

/** Logs the event only; for a caller that records its audit event in its own transaction. */
export function logSecurityEvent(
  logger: Logger,
  event: SecurityEvent,
  context: SecurityEventContext = {},
): void {
  const { type, ...fields } = event;
  const level = WARN.has(type) ? 'warn' : 'info';
  logger[level]({ securityEvent: type, ...fields, ...context }, 'security event');
}

/** Logs the event and appends it to the audit trail of the current request (or job). */
export function recordSecurityEvent(
  logger: Logger,
  event: SecurityEvent,
  context: SecurityEventContext = {},
): void {
  logSecurityEvent(logger, event, context);
  auditInCurrentScope(securityEventToAudit(event, context));
}
