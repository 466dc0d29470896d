import { assertCanGrant } from '../access/access.service.js';
import type { Db } from '../platform/db/transaction.js';
import type { Role } from '../platform/db/schema.js';
import type { ProjectService } from '../projects/project.service.js';
import type { Principal } from './principal.js';
import * as repo from './oidc.repository.js';

export interface GroupRoleInput {
  group: string;
  role: Role;
  environment?: string | undefined;
}

/**
 * Per-project mappings from identity-provider groups to roles, applied at every single
 * sign-on. Reading them needs member.read; replacing them member.write (a project-wide
 * grant), and member.owner when any mapping grants the owner role. A mapping grants no
 * more than its author holds.
 */
export function createGroupRoleService(deps: { db: Db; projects: ProjectService }) {
  const { db, projects } = deps;
  const toResponse = (rows: repo.GroupRoleRow[]) => ({ mappings: rows });

  return {
    async get(principal: Principal, project: string) {
      const grant = await projects.access(principal, project, 'member.read');
      return toResponse(await repo.listGroupRoles(db, grant.projectId));
    },

    async replace(principal: Principal, project: string, mappings: GroupRoleInput[]) {
      const isOwnerGrant = mappings.some((mapping) => mapping.role === 'owner');
      const grant = await projects.access(
        principal,
        project,
        isOwnerGrant ? 'member.owner' : 'member.write',
      );
      const rows: repo.GroupRoleRow[] = [];
      for (const mapping of mappings) {
        const environmentId =
          mapping.environment === undefined
            ? null
            : (await projects.getEnvironment(grant.projectId, mapping.environment)).id;
        assertCanGrant(grant, { role: mapping.role, environmentId, expiresAt: null });
        rows.push({ group: mapping.group, role: mapping.role, environmentId });
      }
      await repo.replaceGroupRoles(db, grant.projectId, rows);
      return toResponse(await repo.listGroupRoles(db, grant.projectId));
    },
  };
}

export type GroupRoleService = ReturnType<typeof createGroupRoleService>;
