import type { Role } from '../platform/db/schema.js';

/**
 * What each role may do in a project. Roles are cumulative: each includes the one below.
 * Instance admins act as owners everywhere.
 */
export const PERMISSIONS = {
  'project.read': 'readonly',
  'member.read': 'readonly',
  'variables.read': 'readonly',
  'service.write': 'developer',
  'variables.write': 'developer',
  'build.create': 'developer',
  'deployment.create': 'developer',
  'project.update': 'admin',
  'environment.write': 'admin',
  'member.write': 'admin',
  'invitation.read': 'admin',
  'service.delete': 'admin',
  'project.delete': 'owner',
  'member.owner': 'owner',
  // Secrets: service scope is the Developer's, project and environment scope the Admin's.
  'secrets.list': 'readonly',
  'secrets.read.service': 'developer',
  'secrets.write.service': 'developer',
  'secrets.read.shared': 'admin',
  'secrets.write.shared': 'admin',
  'secrets.destroy': 'owner',
} as const satisfies Record<string, Role>;

export type Permission = keyof typeof PERMISSIONS;

const RANK: Record<Role, number> = { readonly: 0, developer: 1, admin: 2, owner: 3 };

export const ROLES: readonly Role[] = ['owner', 'admin', 'developer', 'readonly'];

export function roleAllows(role: Role, permission: Permission): boolean {
  return RANK[role] >= RANK[PERMISSIONS[permission]];
}

/** Whether `role` is at least `other`: nobody grants a role above their own. */
export function isRoleAtLeast(role: Role, other: Role): boolean {
  return RANK[role] >= RANK[other];
}

/**
 * What a grant narrowed to one environment may still use: reads, deploying, and secrets
 * (the deployment and secret services then check the environment each action touches).
 * Everything else changes what every environment runs or who holds which grant, so it
 * needs a project-wide grant; a permission added later is project-wide unless listed here.
 */
const ENVIRONMENT_PERMISSIONS: ReadonlySet<Permission> = new Set<Permission>([
  'project.read',
  'member.read',
  'variables.read',
  'deployment.create',
  'secrets.list',
  'secrets.read.service',
  'secrets.write.service',
  'secrets.read.shared',
  'secrets.write.shared',
  'secrets.destroy',
]);

export function isProjectWide(permission: Permission): boolean {
  return !ENVIRONMENT_PERMISSIONS.has(permission);
}

/** Permissions that change state; an archived project refuses them. */
export function isWrite(permission: Permission): boolean {
  if (permission === 'secrets.list' || permission.startsWith('secrets.read.')) return false;
  return (
    permission !== 'project.read' &&
    permission !== 'member.read' &&
    permission !== 'variables.read' &&
    permission !== 'invitation.read'
  );
}
