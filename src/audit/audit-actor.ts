import type { Principal } from '../auth/principal.js';
import type { Actor } from './audit-event.js';
import type { ActorRole } from './audit.tables.js';

const ROLES = new Set<string>(['owner', 'admin', 'developer', 'readonly']);

export function isProjectRole(role: string): role is Exclude<ActorRole, 'instance_admin'> {
  return ROLES.has(role);
}

/** The actor a principal stands for: a person, or an API token and the person it acts for. */
export function actorOf(principal: Principal): Actor {
  const { credential } = principal;
  return {
    type: credential.kind === 'api_token' ? 'api_token' : 'user',
    id: principal.userId,
    tokenId: credential.kind === 'api_token' ? credential.apiTokenId : null,
    role: principal.isInstanceAdmin ? 'instance_admin' : null,
  };
}

/**
 * The role to record for an action: the project role the grant gave, or instance_admin for
 * an instance admin (who acts as an owner everywhere, member or not). Without a grant (an
 * instance-wide action such as creating a project) only an instance admin has a role.
 */
export function roleFor(principal: Principal, grant?: { role: string }): ActorRole | null {
  if (principal.isInstanceAdmin) return 'instance_admin';
  if (grant === undefined) return null;
  return isProjectRole(grant.role) ? grant.role : null;
}
