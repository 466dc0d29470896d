import type { Principal } from '../auth/principal.js';
import { AppError, type ErrorCode } from '../platform/errors.js';
import type { Role } from '../platform/db/schema.js';
import {
  isProjectWide,
  isRoleAtLeast,
  isWrite,
  roleAllows,
  type Permission,
} from './permissions.js';
import { assertScope, restrictedProjectOf, scopeFor } from './scopes.js';
import type { ProjectAccessRow } from './access.repository.js';

export interface ProjectGrant {
  projectId: string;
  projectSlug: string;
  role: Role;
  /** The one environment the grant is narrowed to, or null for the whole project. */
  environmentId: string | null;
  /** When the grant lapses, or null when it does not. */
  expiresAt: Date | null;
}

/** A grant someone asks to give (a membership, an invitation, a group mapping). */
export interface GrantRequest {
  role: Role;
  environmentId: string | null;
  expiresAt: Date | null;
}

/**
 * Decides whether a principal may act on a project. Callers who are not members (or whose
 * grant expired) get the same not-found error as for a project that does not exist, so ids
 * of other projects reveal nothing. An API token restricted to another project sees the
 * same; one without the permission's scope gets 403. A grant narrowed to one environment
 * gets 403 for project-wide permissions (see isProjectWide).
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

  const grant = grantOf(principal, access, now);
  if (grant === undefined) throw missing();

  if (!roleAllows(grant.role, permission)) {
    throw new AppError('FORBIDDEN', `The ${grant.role} role cannot perform ${permission}`, {
      details: { permission, role: grant.role },
    });
  }
  if (grant.environmentId !== null && isProjectWide(permission)) {
    throw new AppError(
      'FORBIDDEN',
      `Your role is limited to one environment; ${permission} needs a project-wide grant`,
      { details: { permission, role: grant.role } },
    );
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
  return grant;
}

/** The caller's live grant; instance admins hold a project-wide, lasting owner grant. */
function grantOf(
  principal: Principal,
  access: ProjectAccessRow,
  now: Date,
): ProjectGrant | undefined {
  const project = { projectId: access.projectId, projectSlug: access.projectSlug };
  if (principal.isInstanceAdmin) {
    return { ...project, role: 'owner', environmentId: null, expiresAt: null };
  }
  if (access.role === null) return undefined;
  const expiresAt = access.memberExpiresAt;
  if (expiresAt !== null && expiresAt <= now) return undefined;
  return { ...project, role: access.role, environmentId: access.environmentId, expiresAt };
}

/** A grant narrowed to one environment may act only there. */
export function assertEnvironmentInScope(grant: ProjectGrant, environmentId: string): void {
  if (grant.environmentId !== null && grant.environmentId !== environmentId) {
    throw new AppError('FORBIDDEN', 'Your role in this project is limited to another environment');
  }
}

/** A grant's expiry, when given, must lie in the future (400 MEMBER_EXPIRY_INVALID). */
export function assertFutureExpiry(expiresAt: Date | null, now = new Date()): void {
  if (expiresAt !== null && expiresAt <= now) {
    throw new AppError('MEMBER_EXPIRY_INVALID', 'expiresAt must be in the future', {
      details: { field: 'expiresAt' },
    });
  }
}

/**
 * Nobody grants more than they hold: the requested role is at most the granter's, narrowed
 * to the granter's environment when theirs is, and lapsing no later than the granter's own
 * grant. Throws 403 FORBIDDEN otherwise.
 */
export function assertCanGrant(grant: ProjectGrant, request: GrantRequest): void {
  if (!isRoleAtLeast(grant.role, request.role)) {
    throw new AppError('FORBIDDEN', `The ${grant.role} role cannot grant the ${request.role} role`);
  }
  if (grant.environmentId !== null && request.environmentId !== grant.environmentId) {
    throw new AppError(
      'FORBIDDEN',
      'Your role is limited to one environment; so are the grants you give',
    );
  }
  const { expiresAt } = grant;
  if (expiresAt !== null && (request.expiresAt === null || request.expiresAt > expiresAt)) {
    throw new AppError('FORBIDDEN', 'Your role expires; the grants you give must expire no later', {
      details: { grantExpiresAt: expiresAt.toISOString() },
    });
  }
}
