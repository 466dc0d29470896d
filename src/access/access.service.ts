import type { Principal } from '../auth/principal.js';
import { AppError, type ErrorCode } from '../platform/errors.js';
import type { Role } from '../platform/db/schema.js';
import { isWrite, roleAllows, type Permission } from './permissions.js';
import { assertScope, restrictedProjectOf, scopeFor } from './scopes.js';
import type { ProjectAccessRow } from './access.repository.js';

export interface ProjectGrant {
  projectId: string;
  projectSlug: string;
  role: Role;
  environmentId: string | null;
}

/**
 * Decides whether a principal may act on a project. Callers who are not members (or whose
 * grant expired) get the same not-found error as for a project that does not exist, so ids
 * of other projects reveal nothing. An API token restricted to another project sees the
 * same; one without the permission's scope gets 403.
 */
export function authorize(
  principal: Principal,
  access: ProjectAccessRow | undefined,
  permission: Permission,
  notFound: { code: ErrorCode; message: string },
  now = new Date(),
): ProjectGrant {
  const missing = () => new AppError(notFound.code, notFound.message);
  if (access === undefined) throw missing();
  const restrictedTo = restrictedProjectOf(principal);
  if (restrictedTo !== undefined && restrictedTo !== access.projectId) throw missing();

  let role: Role | null = access.role;
  const isExpired = access.memberExpiresAt !== null && access.memberExpiresAt <= now;
  if (isExpired) role = null;
  if (principal.isInstanceAdmin) role = 'owner';
  if (role === null) throw missing();

  if (!roleAllows(role, permission)) {
    throw new AppError('FORBIDDEN', `The ${role} role cannot perform ${permission}`, {
      details: { permission, role },
    });
  }
  assertScope(principal, scopeFor(permission));
  if (
    access.projectStatus === 'archived' &&
    isWrite(permission) &&
    permission !== 'project.update'
  ) {
    throw new AppError('FORBIDDEN', 'The project is archived and read-only', {
      details: { permission },
    });
  }
  return {
    projectId: access.projectId,
    projectSlug: access.projectSlug,
    role,
    environmentId: principal.isInstanceAdmin ? null : access.environmentId,
  };
}

/** A grant narrowed to one environment may act only there. */
export function assertEnvironmentInScope(grant: ProjectGrant, environmentId: string): void {
  if (grant.environmentId !== null && grant.environmentId !== environmentId) {
    throw new AppError('FORBIDDEN', 'Your role in this project is limited to another environment');
  }
}
