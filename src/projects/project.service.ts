import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { assertScope, assertUnrestricted, restrictedProjectOf } from '../access/scopes.js';
import { markManual } from '../auth/oidc.repository.js';
import { recordSecurityEvent } from '../auth/security-events.js';
import { findProjectAccess } from '../access/access.repository.js';
import { assertEnvironmentInScope, authorize, type ProjectGrant } from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { findUserByEmail } from '../auth/auth.repository.js';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { EnvironmentRow, Role } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import * as repo from './project.repository.js';
import { toEnvironmentResponse, toMemberResponse, toProjectResponse } from './project.schema.js';

const PROJECT_NOT_FOUND = { code: 'PROJECT_NOT_FOUND', message: 'Project not found' } as const;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Derives an RFC 1123 label from a display name ("My App!" → "my-app"). */
export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

export function createProjectService(deps: { db: Db; logger: Logger }) {
  const { db, logger } = deps;

  /** Resolves a project by id or slug and checks the caller may `permission` on it. */
  async function access(principal: Principal, project: string, permission: Permission): Promise<ProjectGrant> {
    const row = await findProjectAccess(db, project, principal.userId);
    return authorize(principal, row, permission, PROJECT_NOT_FOUND);
  }

  async function getEnvironment(projectId: string, idOrName: string): Promise<EnvironmentRow> {
    const row = await repo.findEnvironment(db, projectId, idOrName);
    if (row === undefined) throw new AppError('ENVIRONMENT_NOT_FOUND', `Environment "${idOrName}" not found`);
    return row;
  }

  function memberChanged(principal: Principal, projectId: string, memberId: string, change: 'added' | 'role_changed' | 'removed', role: Role | null) {
    recordSecurityEvent(logger, { type: 'member.changed', projectId, memberId, byUserId: principal.userId, change, role, source: 'api' });
  }

  async function getProject(projectId: string) {
    const row = await repo.getProjectById(db, projectId);
    if (row === undefined) throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND.message);
    return row;
  }

  return {
    access,
    getEnvironment,

    async create(principal: Principal, input: { name: string; slug?: string }) {
      assertUnrestricted(principal);
      assertScope(principal, 'write');
      const slug = input.slug ?? slugify(input.name);
      if (!LABEL.test(slug)) {
        throw new AppError('INVALID_NAME', `Cannot derive a valid slug from "${input.name}"; give one explicitly (lowercase letters, digits, hyphens)`, {
          details: { field: 'slug' },
        });
      }
      const row = await repo.insertProject(db, { slug, name: input.name, ownerId: principal.userId });
      if (row === undefined) throw new AppError('PROJECT_SLUG_TAKEN', `The slug "${slug}" is taken`);
      logger.info({ projectId: row.id, slug, userId: principal.userId }, 'project created');
      return toProjectResponse(row);
    },

    async list(principal: Principal, page: PageRequest) {
      assertScope(principal, 'read');
      const rows = await repo.listProjectsForUser(
        db,
        { id: principal.userId, isInstanceAdmin: principal.isInstanceAdmin, onlyProjectId: restrictedProjectOf(principal) },
        page,
      );
      return toPage(rows, page, rowPosition, toProjectResponse);
    },

    async get(principal: Principal, project: string) {
      const grant = await access(principal, project, 'project.read');
      return toProjectResponse(await getProject(grant.projectId));
    },

    async update(principal: Principal, project: string, input: { name?: string; archived?: boolean }) {
      const grant = await access(principal, project, 'project.update');
      const row = await repo.updateProject(db, grant.projectId, {
        ...(input.name === undefined ? {} : { name: input.name }),
        ...(input.archived === undefined ? {} : { status: input.archived ? 'archived' : 'active' }),
      });
      if (row === undefined) throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND.message);
      logger.info({ projectId: row.id, userId: principal.userId }, 'project updated');
      return toProjectResponse(row);
    },

    async remove(principal: Principal, project: string, hasLiveWorkloads: (projectId: string) => Promise<boolean>) {
      const grant = await access(principal, project, 'project.delete');
      if (await hasLiveWorkloads(grant.projectId)) {
        throw new AppError('ENVIRONMENT_PROTECTED', 'Stop the project\'s deployments before deleting it');
      }
      await repo.deleteProject(db, grant.projectId);
      logger.info({ projectId: grant.projectId, userId: principal.userId }, 'project deleted');
    },

    async listEnvironments(principal: Principal, project: string, page: PageRequest) {
      const grant = await access(principal, project, 'project.read');
      const rows = await repo.listEnvironments(db, grant.projectId, page);
      return toPage(rows, page, rowPosition, toEnvironmentResponse);
    },

    async getEnvironmentFor(principal: Principal, project: string, env: string) {
      const grant = await access(principal, project, 'project.read');
      return toEnvironmentResponse(await getEnvironment(grant.projectId, env));
    },

    async createEnvironment(principal: Principal, project: string, name: string) {
      const grant = await access(principal, project, 'environment.write');
      const kind = name.startsWith('preview-') ? 'preview' : 'standard';
      const row = await repo.insertEnvironment(db, { projectId: grant.projectId, name, kind });
      if (row === undefined) throw new AppError('ENVIRONMENT_NAME_TAKEN', `Environment "${name}" exists`);
      logger.info({ projectId: grant.projectId, environmentId: row.id }, 'environment created');
      return toEnvironmentResponse(row);
    },

    async renameEnvironment(principal: Principal, project: string, env: string, name: string) {
      const grant = await access(principal, project, 'environment.write');
      const current = await getEnvironment(grant.projectId, env);
      if (await repo.findEnvironment(db, grant.projectId, name)) {
        throw new AppError('ENVIRONMENT_NAME_TAKEN', `Environment "${name}" exists`);
      }
      if ((await repo.countLiveDeployments(db, current.id)) > 0) {
        throw new AppError('ENVIRONMENT_PROTECTED', 'Environments with live deployments cannot be renamed: their hostnames would change');
      }
      const row = await repo.renameEnvironment(db, current.id, name);
      if (row === undefined) throw new AppError('ENVIRONMENT_NOT_FOUND', `Environment "${env}" not found`);
      return toEnvironmentResponse(row);
    },

    async deleteEnvironment(principal: Principal, project: string, env: string) {
      const grant = await access(principal, project, 'environment.write');
      const current = await getEnvironment(grant.projectId, env);
      if ((await repo.countLiveDeployments(db, current.id)) > 0) {
        throw new AppError('ENVIRONMENT_PROTECTED', 'Stop the environment\'s deployments before deleting it');
      }
      await repo.deleteEnvironment(db, current.id);
      logger.info({ projectId: grant.projectId, environmentId: current.id }, 'environment deleted');
    },

    async listMembers(principal: Principal, project: string, page: PageRequest) {
      const grant = await access(principal, project, 'member.read');
      const rows = await repo.listMembers(db, grant.projectId, page);
      return toPage(rows, page, (row) => ({ at: row.cursor_at, id: row.user_id }), toMemberResponse);
    },

    async addMember(
      principal: Principal,
      project: string,
      input: { email: string; role: Role; environment?: string; expiresAt?: string },
    ) {
      const grant = await access(principal, project, input.role === 'owner' ? 'member.owner' : 'member.write');
      const user = await findUserByEmail(db, input.email.trim().toLowerCase());
      if (user === undefined) throw new AppError('USER_NOT_FOUND', 'No account uses that email');
      const environmentId = input.environment === undefined ? null : (await getEnvironment(grant.projectId, input.environment)).id;
      const isAdded = await repo.insertMember(db, {
        projectId: grant.projectId,
        userId: user.id,
        role: input.role,
        environmentId,
        expiresAt: input.expiresAt === undefined ? null : new Date(input.expiresAt),
      });
      if (!isAdded) throw new AppError('MEMBER_EXISTS', 'That user is already a member');
      logger.info({ projectId: grant.projectId, memberId: user.id, role: input.role }, 'member added');
      memberChanged(principal, grant.projectId, user.id, 'added', input.role);
      const member = await repo.findMember(db, grant.projectId, user.id);
      if (member === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      return toMemberResponse(member);
    },

    async updateMember(
      principal: Principal,
      project: string,
      userId: string,
      input: { role: Role; environment?: string | null; expiresAt?: string | null },
    ) {
      const grant = await access(principal, project, 'member.write');
      const existing = await repo.findMember(db, grant.projectId, userId);
      if (existing === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      if (existing.role === 'owner' || input.role === 'owner') {
        await access(principal, project, 'member.owner');
      }
      const environmentId =
        input.environment === undefined
          ? existing.environment_id
          : input.environment === null
            ? null
            : (await getEnvironment(grant.projectId, input.environment)).id;
      const expiresAt =
        input.expiresAt === undefined ? existing.expires_at : input.expiresAt === null ? null : new Date(input.expiresAt);
      const outcome = await repo.changeMember(db, grant.projectId, userId, { role: input.role, environmentId, expiresAt });
      if (outcome === 'last_owner') throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be demoted');
      if (outcome === 'missing') throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      // A person changed this grant: single sign-on no longer manages it.
      await markManual(db, grant.projectId, userId);
      memberChanged(principal, grant.projectId, userId, 'role_changed', input.role);
      const member = await repo.findMember(db, grant.projectId, userId);
      if (member === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      return toMemberResponse(member);
    },

    async removeMember(principal: Principal, project: string, userId: string) {
      const grant = await access(principal, project, 'member.write');
      const existing = await repo.findMember(db, grant.projectId, userId);
      if (existing === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      if (existing.role === 'owner') await access(principal, project, 'member.owner');
      const outcome = await repo.changeMember(db, grant.projectId, userId, 'remove');
      if (outcome === 'last_owner') throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be removed');
      logger.info({ projectId: grant.projectId, memberId: userId }, 'member removed');
      memberChanged(principal, grant.projectId, userId, 'removed', null);
    },

    assertEnvironmentInScope,
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
