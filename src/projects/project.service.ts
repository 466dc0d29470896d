import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { assertScope, assertUnrestricted, restrictedProjectOf } from '../access/scopes.js';
import { roleFor } from '../audit/audit-actor.js';
import { diffFields, type FieldDiff } from '../audit/audit-event.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import { findProjectAccess } from '../access/access.repository.js';
import {
  assertEnvironmentInScope,
  authorize,
  type ProjectGrant,
} from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import type { EnvironmentRow, ProjectRow } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import * as repo from './project.repository.js';
import { createMemberService } from './member.service.js';
import { toEnvironmentResponse, toProjectResponse } from './project.schema.js';

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

  async function getProject(projectId: string) {
    const row = await repo.getProjectById(db, projectId);
    if (row === undefined) throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND.message);
    return row;
  }

  const members = createMemberService({ db, logger, audit, access, getEnvironment });

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

    ...members,
    assertEnvironmentInScope,
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
