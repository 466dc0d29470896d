import type { Principal } from '../auth/principal.js';
import type { Scope } from '../auth/auth.tables.js';
import { AppError } from '../platform/errors.js';
import type { Permission } from './permissions.js';

/**
 * API token scopes. A token acts with its owner's roles, narrowed to the scopes it was
 * given: read (every read), deploy (builds, deployments, rollbacks), write (projects,
 * environments, services, variables), secrets (secret values), admin (members, deleting
 * projects, instance administration). Scopes do not include one another.
 */
export const SCOPES: readonly Scope[] = ['read', 'deploy', 'write', 'secrets', 'admin'];

const PERMISSION_SCOPES: Partial<Record<Permission, Scope>> = {
  'project.read': 'read',
  'member.read': 'read',
  'variables.read': 'read',
  'build.create': 'deploy',
  'deployment.create': 'deploy',
  'service.write': 'write',
  'variables.write': 'write',
  'project.update': 'write',
  'environment.write': 'write',
  'service.delete': 'write',
  'member.write': 'admin',
  'member.owner': 'admin',
  'invitation.read': 'admin',
  'project.delete': 'admin',
};

/** The scope a permission needs; permissions nobody mapped need admin, the narrowest grant. */
export function scopeFor(permission: Permission): Scope {
  if (permission.startsWith('secrets.')) return 'secrets';
  return PERMISSION_SCOPES[permission] ?? 'admin';
}

/** Throws 403 when the caller is an API token without `scope`; sessions have every scope. */
export function assertScope(principal: Principal, scope: Scope): void {
  const { credential } = principal;
  if (credential.kind !== 'api_token' || credential.scopes.includes(scope)) return;
  throw new AppError('FORBIDDEN', `This API token lacks the "${scope}" scope`, {
    details: { requiredScope: scope, scopes: credential.scopes },
  });
}

/** Managing credentials (sessions, passwords, API tokens) needs a signed-in person. */
export function assertSignedInPerson(principal: Principal): void {
  if (principal.credential.kind === 'session') return;
  throw new AppError(
    'FORBIDDEN',
    'API tokens cannot manage sessions, passwords or tokens; sign in instead',
  );
}

/** Instance-wide actions (creating projects, administration) refuse project-restricted tokens. */
export function assertUnrestricted(principal: Principal): void {
  const { credential } = principal;
  if (credential.kind !== 'api_token' || credential.projectId === null) return;
  throw new AppError('FORBIDDEN', 'This API token is restricted to one project');
}

/** The one project a restricted API token may see, or undefined for every credential else. */
export function restrictedProjectOf(principal: Principal): string | undefined {
  const { credential } = principal;
  return credential.kind === 'api_token' ? (credential.projectId ?? undefined) : undefined;
}
