import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { assertScope, assertUnrestricted, restrictedProjectOf } from '../access/scopes.js';
import { markManual } from '../auth/oidc.repository.js';
import { logSecurityEvent, type SecurityEvent } from '../auth/security-events.js';
import { roleFor } from '../audit/audit-actor.js';
import { diffFields, type FieldDiff } from '../audit/audit-event.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import { securityEventToAudit } from '../audit/audit-sources.js';
import { findProjectAccess } from '../access/access.repository.js';
import {
  assertEnvironmentInScope,
  authorize,
  type ProjectGrant,
} from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { findUserByEmail } from '../auth/auth.repository.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import type { EnvironmentRow, MemberRow, ProjectRow, Role } from '../platform/db/schema.js';
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

export function createProjectService(deps: { db: Db; logger: Logger; audit: AuditRecorder }) {
  const { db, logger, audit } = deps;

  /** Resolves a project by id or slug and checks the caller may `permission` on it. */
  async function access(
    principal: Principal,
    project: string,
    permission: Permission,
  ): Promise<ProjectGrant> {
    const row = await findProjectAccess(db, project, principal.userId);
    return authorize(principal, row, permission, PROJECT_NOT_FOUND);
  }

  async function getEnvironment(projectId: string, idOrName: string): Promise<EnvironmentRow> {
    const row = await repo.findEnvironment(db, projectId, idOrName);
    if (row === undefined)
      throw new AppError('ENVIRONMENT_NOT_FOUND', `Environment "${idOrName}" not found`);
    return row;
  }

  /** Logs a membership change and records its audit event in `trx`, with the change. */
  async function memberChanged(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant,
    change: {
      memberId: string;
      kind: 'added' | 'role_changed' | 'removed';
      role: Role | null;
      diff: FieldDiff;
    },
  ) {
    const event: SecurityEvent = {
      type: 'member.changed',
      projectId: grant.projectId,
      memberId: change.memberId,
      byUserId: principal.userId,
      change: change.kind,
      role: change.role,
      source: 'api',
    };
    logSecurityEvent(logger, event);
    await audit.recordIn(trx, {
      ...securityEventToAudit(event),
      actorRole: roleFor(principal, grant),
      diff: change.diff,
    });
  }

  /** Records a change to a project or one of its environments in `trx`. */
  async function recordChange(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant | undefined,
    change: {
      action: string;
      project: ProjectRow | { id: string; slug: string };
      environment?: EnvironmentRow;
      diff: FieldDiff;
    },
  ) {
    const { project, environment } = change;
    await audit.recordIn(trx, {
      action: change.action,
      resource:
        environment === undefined
          ? { type: 'project', id: project.id, name: project.slug }
          : { type: 'environment', id: environment.id, name: environment.name },
      projectId: project.id,
      environmentId: environment?.id ?? null,
      actorRole: roleFor(principal, grant),
      diff: change.diff,
    });
  }

  const memberFields = (
    member: Pick<MemberRow, 'role' | 'environment_id' | 'expires_at'> | undefined,
  ) =>
    member === undefined
      ? null
      : { role: member.role, environmentId: member.environment_id, expiresAt: member.expires_at };

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
        throw new AppError(
          'INVALID_NAME',
          `Cannot derive a valid slug from "${input.name}"; give one explicitly (lowercase letters, digits, hyphens)`,
          {
            details: { field: 'slug' },
          },
        );
      }
      const row = await inTransaction(db, async (trx) => {
        const created = await repo.insertProject(trx, {
          slug,
          name: input.name,
          ownerId: principal.userId,
        });
        if (created === undefined) return undefined;
        await recordChange(trx, principal, undefined, {
          action: 'project.create',
          project: created,
          diff: diffFields(null, { name: created.name, slug: created.slug }),
        });
        return created;
      });
      if (row === undefined)
        throw new AppError('PROJECT_SLUG_TAKEN', `The slug "${slug}" is taken`);
      logger.info({ projectId: row.id, slug, userId: principal.userId }, 'project created');
      return toProjectResponse(row);
    },

    async list(principal: Principal, page: PageRequest) {
      assertScope(principal, 'read');
      const rows = await repo.listProjectsForUser(
        db,
        {
          id: principal.userId,
          isInstanceAdmin: principal.isInstanceAdmin,
          onlyProjectId: restrictedProjectOf(principal),
        },
        page,
      );
      return toPage(rows, page, rowPosition, toProjectResponse);
    },

    async get(principal: Principal, project: string) {
      const grant = await access(principal, project, 'project.read');
      return toProjectResponse(await getProject(grant.projectId));
    },

    async update(
      principal: Principal,
      project: string,
      input: { name?: string; archived?: boolean },
    ) {
      const grant = await access(principal, project, 'project.update');
      const row = await inTransaction(db, async (trx) => {
        const before = await repo.getProjectById(trx, grant.projectId);
        const updated = await repo.updateProject(trx, grant.projectId, {
          ...(input.name === undefined ? {} : { name: input.name }),
          ...(input.archived === undefined
            ? {}
            : { status: input.archived ? 'archived' : 'active' }),
        });
        if (updated === undefined) return undefined;
        const fields = (value: ProjectRow | undefined) =>
          value === undefined ? null : { name: value.name, status: value.status };
        await recordChange(trx, principal, grant, {
          action: 'project.update',
          project: updated,
          diff: diffFields(fields(before), fields(updated)),
        });
        return updated;
      });
      if (row === undefined) throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND.message);
      logger.info({ projectId: row.id, userId: principal.userId }, 'project updated');
      return toProjectResponse(row);
    },

    async remove(
      principal: Principal,
      project: string,
      hasLiveWorkloads: (projectId: string) => Promise<boolean>,
    ) {
      const grant = await access(principal, project, 'project.delete');
      if (await hasLiveWorkloads(grant.projectId)) {
        throw new AppError(
          'ENVIRONMENT_PROTECTED',
          "Stop the project's deployments before deleting it",
        );
      }
      await inTransaction(db, async (trx) => {
        await repo.deleteProject(trx, grant.projectId);
        await recordChange(trx, principal, grant, {
          action: 'project.delete',
          project: { id: grant.projectId, slug: grant.projectSlug },
          diff: {},
        });
      });
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
      const row = await inTransaction(db, async (trx) => {
        const created = await repo.insertEnvironment(trx, {
          projectId: grant.projectId,
          name,
          kind,
        });
        if (created === undefined) return undefined;
        const project = { id: grant.projectId, slug: grant.projectSlug };
        await recordChange(trx, principal, grant, {
          action: 'environment.create',
          project,
          environment: created,
          diff: diffFields(null, { name, kind }),
        });
        return created;
      });
      if (row === undefined)
        throw new AppError('ENVIRONMENT_NAME_TAKEN', `Environment "${name}" exists`);
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
        throw new AppError(
          'ENVIRONMENT_PROTECTED',
          'Environments with live deployments cannot be renamed: their hostnames would change',
        );
      }
      const row = await inTransaction(db, async (trx) => {
        const renamed = await repo.renameEnvironment(trx, current.id, name);
        if (renamed === undefined) return undefined;
        const project = { id: grant.projectId, slug: grant.projectSlug };
        await recordChange(trx, principal, grant, {
          action: 'environment.update',
          project,
          environment: renamed,
          diff: diffFields({ name: current.name }, { name: renamed.name }),
        });
        return renamed;
      });
      if (row === undefined)
        throw new AppError('ENVIRONMENT_NOT_FOUND', `Environment "${env}" not found`);
      return toEnvironmentResponse(row);
    },

    async deleteEnvironment(principal: Principal, project: string, env: string) {
      const grant = await access(principal, project, 'environment.write');
      const current = await getEnvironment(grant.projectId, env);
      if ((await repo.countLiveDeployments(db, current.id)) > 0) {
        throw new AppError(
          'ENVIRONMENT_PROTECTED',
          "Stop the environment's deployments before deleting it",
        );
      }
      await inTransaction(db, async (trx) => {
        await repo.deleteEnvironment(trx, current.id);
        const project = { id: grant.projectId, slug: grant.projectSlug };
        await recordChange(trx, principal, grant, {
          action: 'environment.delete',
          project,
          environment: current,
          diff: {},
        });
      });
      logger.info({ projectId: grant.projectId, environmentId: current.id }, 'environment deleted');
    },

    async listMembers(principal: Principal, project: string, page: PageRequest) {
      const grant = await access(principal, project, 'member.read');
      const rows = await repo.listMembers(db, grant.projectId, page);
      return toPage(
        rows,
        page,
        (row) => ({ at: row.cursor_at, id: row.user_id }),
        toMemberResponse,
      );
    },

    async addMember(
      principal: Principal,
      project: string,
      input: { email: string; role: Role; environment?: string; expiresAt?: string },
    ) {
      const grant = await access(
        principal,
        project,
        input.role === 'owner' ? 'member.owner' : 'member.write',
      );
      const user = await findUserByEmail(db, input.email.trim().toLowerCase());
      if (user === undefined) throw new AppError('USER_NOT_FOUND', 'No account uses that email');
      const environmentId =
        input.environment === undefined
          ? null
          : (await getEnvironment(grant.projectId, input.environment)).id;
      const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
      await inTransaction(db, async (trx) => {
        const isAdded = await repo.insertMember(trx, {
          projectId: grant.projectId,
          userId: user.id,
          role: input.role,
          environmentId,
          expiresAt,
        });
        if (!isAdded) throw new AppError('MEMBER_EXISTS', 'That user is already a member');
        const diff = diffFields(null, { role: input.role, environmentId, expiresAt });
        await memberChanged(trx, principal, grant, {
          memberId: user.id,
          kind: 'added',
          role: input.role,
          diff,
        });
      });
      logger.info(
        { projectId: grant.projectId, memberId: user.id, role: input.role },
        'member added',
      );
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
        input.expiresAt === undefined
          ? existing.expires_at
          : input.expiresAt === null
            ? null
            : new Date(input.expiresAt);
      await inTransaction(db, async (trx) => {
        const outcome = await repo.changeMember(trx, grant.projectId, userId, {
          role: input.role,
          environmentId,
          expiresAt,
        });
        if (outcome === 'last_owner')
          throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be demoted');
        if (outcome === 'missing') throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
        // A person changed this grant: single sign-on no longer manages it.
        await markManual(trx, grant.projectId, userId);
        const diff = diffFields(memberFields(existing), {
          role: input.role,
          environmentId,
          expiresAt,
        });
        await memberChanged(trx, principal, grant, {
          memberId: userId,
          kind: 'role_changed',
          role: input.role,
          diff,
        });
      });
      const member = await repo.findMember(db, grant.projectId, userId);
      if (member === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      return toMemberResponse(member);
    },

    async removeMember(principal: Principal, project: string, userId: string) {
      const grant = await access(principal, project, 'member.write');
      const existing = await repo.findMember(db, grant.projectId, userId);
      if (existing === undefined) throw new AppError('MEMBER_NOT_FOUND', 'Member not found');
      if (existing.role === 'owner') await access(principal, project, 'member.owner');
      await inTransaction(db, async (trx) => {
        const outcome = await repo.changeMember(trx, grant.projectId, userId, 'remove');
        if (outcome === 'last_owner')
          throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be removed');
        await memberChanged(trx, principal, grant, {
          memberId: userId,
          kind: 'removed',
          role: null,
          diff: diffFields(memberFields(existing), null),
        });
      });
      logger.info({ projectId: grant.projectId, memberId: userId }, 'member removed');
    },

    assertEnvironmentInScope,
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
