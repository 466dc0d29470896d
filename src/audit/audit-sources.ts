import type { SecurityEvent, SecurityEventContext } from '../auth/security-events.js';
import type { SecretAccessEvent } from '../secrets/secret-audit.js';
import { currentAuditScope } from './audit-context.js';
import { REDACTED, SYSTEM_ACTOR, type Actor, type AuditEventInput } from './audit-event.js';
import type { Outcome } from './audit.tables.js';

/**
 * How the events other domains already report (security events from identity, secret
 * accesses from Lockbox) read in the audit trail. Pure mappings; the reporting functions
 * hand the result to the current audit scope.
 */

/** The acting user: the scope's actor when it is them (it knows their token), else them by id. */
function userActor(userId: string): Actor {
  const actor = currentAuditScope()?.actor;
  if (actor !== undefined && actor.id === userId) return actor;
  return { type: 'user', id: userId, tokenId: null, role: null };
}

const user = (id: string) => ({ type: 'user', id });

export function securityEventToAudit(
  event: SecurityEvent,
  context: SecurityEventContext = {},
): AuditEventInput {
  const where = context.clientIp === undefined ? {} : { clientIp: context.clientIp };
  const denied: Outcome = 'denied';
  switch (event.type) {
    case 'sign_in.succeeded':
      return {
        action: 'auth.sign_in',
        actor: userActor(event.userId),
        resource: { type: 'session', id: event.sessionId },
        details: { method: event.method, ...where },
      };
    case 'sign_in.failed':
      return {
        action: 'auth.sign_in',
        outcome: 'failure',
        details: { reason: event.reason, ...where },
      };
    case 'sign_in.locked_out':
      return {
        action: 'auth.sign_in.locked_out',
        outcome: denied,
        details: { lockedForSeconds: event.lockedForSeconds, ...where },
      };
    case 'sign_in.rate_limited':
      return {
        action: 'auth.rate_limited',
        outcome: denied,
        details: { attempted: event.action, limit: event.limit, ...where },
      };
    case 'refresh_token.reused':
      return {
        action: 'auth.refresh_token.reused',
        outcome: denied,
        actor: userActor(event.userId),
        resource: { type: 'session', id: event.sessionId },
        details: where,
      };
    case 'session.revoked':
      return {
        action: 'auth.session.revoke',
        resource: user(event.userId),
        details: { sessionIds: event.sessionIds, reason: event.reason },
      };
    case 'csrf.rejected':
      return {
        action: 'auth.csrf.rejected',
        outcome: denied,
        actor: userActor(event.userId),
        resource: { type: 'session', id: event.sessionId },
        details: where,
      };
    case 'password.changed':
      return {
        action: 'user.password.change',
        resource: user(event.userId),
        diff: { password: { from: REDACTED, to: REDACTED } },
        details: { byAdmin: event.byAdmin },
      };
    case 'user.disabled':
    case 'user.enabled':
      return {
        action: event.type === 'user.disabled' ? 'user.disable' : 'user.enable',
        actor: userActor(event.byUserId),
        resource: user(event.userId),
        diff: {
          status:
            event.type === 'user.disabled'
              ? { from: 'active', to: 'disabled' }
              : { from: 'disabled', to: 'active' },
        },
      };
    case 'user.created':
      return {
        action: 'user.create',
        actor: event.byUserId === null ? userActor(event.userId) : userActor(event.byUserId),
        resource: user(event.userId),
        details: { via: event.via, ...where },
      };
    case 'sign_up.email_taken':
      return {
        action: 'auth.sign_up',
        outcome: 'failure',
        ...(event.userId === null ? {} : { resource: user(event.userId) }),
        details: { reason: 'email_taken', ...where },
      };
    case 'sign_up.token_refused':
      return {
        action: 'auth.sign_up.verify',
        outcome: denied,
        details: { reason: event.reason, ...where },
      };
    case 'api_token.created':
      return {
        action: 'api_token.create',
        actor: userActor(event.userId),
        resource: { type: 'api_token', id: event.apiTokenId },
        projectId: event.projectId,
        details: { scopes: event.scopes, projectId: event.projectId },
      };
    case 'api_token.revoked':
      return {
        action: 'api_token.revoke',
        actor: userActor(event.userId),
        resource: { type: 'api_token', id: event.apiTokenId },
      };
    case 'member.changed':
      return {
        action:
          event.change === 'added'
            ? 'member.add'
            : event.change === 'removed'
              ? 'member.remove'
              : 'member.role_change',
        actor:
          event.source === 'oidc'
            ? { type: 'system', id: null, tokenId: null, role: null }
            : userActor(event.byUserId),
        resource: { type: 'member', id: event.memberId },
        projectId: event.projectId,
        diff: { role: { from: null, to: event.role } },
        details: { source: event.source, memberId: event.memberId },
      };
  }
}

/**
 * Whom Switchyard's own work acts for: in a job, the person who asked for it (the job's audit
 * scope names them); anywhere else, the system.
 */
function onBehalfActor(): Actor {
  const actor = currentAuditScope()?.actor;
  return actor !== undefined && (actor.type === 'user' || actor.type === 'api_token')
    ? actor
    : SYSTEM_ACTOR;
}

/**
 * A secret read or write. Switchyard's own accesses (`system`: values delivered to a
 * workload, rotation outcomes) name the person whose deployment or rotation caused them.
 */
export function secretAccessToAudit(event: SecretAccessEvent): AuditEventInput {
  const { scope } = event;
  const isSystem = event.actor === 'system';
  return {
    action: `secret.${event.action}`,
    actor: isSystem ? onBehalfActor() : userActor(event.actor),
    resource: { type: 'secret', id: event.secretId, name: event.name },
    projectId: scope.projectId,
    environmentId: scope.kind === 'environment' ? scope.environmentId : null,
    ...(event.action === 'write' || event.action === 'restore'
      ? { diff: { value: { from: REDACTED, to: REDACTED } } }
      : {}),
    details: {
      scope: scope.kind,
      ...(isSystem ? { automated: true } : {}),
      ...(scope.kind === 'service' ? { serviceId: scope.serviceId } : {}),
      ...(event.version === undefined ? {} : { version: event.version }),
      ...(event.versions === undefined ? {} : { versions: event.versions }),
      ...(event.deploymentId === undefined ? {} : { deploymentId: event.deploymentId }),
      ...(event.rotationId === undefined ? {} : { rotationId: event.rotationId }),
      ...(event.reason === undefined ? {} : { reason: event.reason }),
    },
  };
}
