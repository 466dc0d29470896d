import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { authorize, type ProjectGrant } from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import { roleFor } from '../audit/audit-actor.js';
import { diffFields, type FieldDiff } from '../audit/audit-event.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import type { RuntimeSettings, ServiceRow } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import { checkGitUrl, type Resolver, type UrlPolicy } from '../platform/url-guard.js';
import type { ProjectService } from '../projects/project.service.js';
import { parseDotenv, validateEnvName } from './dotenv.js';
import * as repo from './service.repository.js';
import {
  toServiceResponse,
  type CreateServiceBody,
  type UpdateServiceBody,
} from './service.schema.js';

const SERVICE_NOT_FOUND = { code: 'SERVICE_NOT_FOUND', message: 'Service not found' } as const;
// Set by the platform for every instance; a configuration variable must not shadow them.
const RESERVED_VARIABLES = new Set(['PORT', 'HOST']);
const MAX_VARIABLES = 500;
// Linux refuses to start a process with one environment entry over 128 KiB (MAX_ARG_STRLEN), or
// with more than about 2 MiB of arguments and environment together.
const MAX_VALUE_BYTES = 65_536;
const MAX_TOTAL_BYTES = 1_048_576;

export const DEFAULT_RUNTIME: RuntimeSettings = { healthCheckPath: '/healthz', instances: 1 };

export function createServiceService(deps: {
  db: Db;
  logger: Logger;
  projects: ProjectService;
  gitPolicy: UrlPolicy;
  resolver: Resolver;
  audit: AuditRecorder;
}) {
  const { db, logger, projects } = deps;

  /** Records a change to a service (or its variables) in `trx`, with the change. */
  async function recordChange(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant,
    action: string,
    service: ServiceRow,
    diff: FieldDiff,
  ) {
    await deps.audit.recordIn(trx, {
      action,
      resource: { type: 'service', id: service.id, name: service.name },
      projectId: service.project_id,
      actorRole: roleFor(principal, grant),
      diff,
    });
  }

  const serviceFields = (row: ServiceRow) => ({
    name: row.name,
    gitUrl: row.git_url,
    branch: row.branch,
    build: row.build,
    runtime: row.runtime,
  });
  // Configuration values may hold credentials whatever their names: a diff names the variables that changed, never their values.
  const variableDiff = (before: Record<string, string>, after: Record<string, string>) =>
    diffFields({ variables: before }, { variables: after }, { secretFields: ['variables'] });

  /** Loads a service the caller may `permission` on; unknown and foreign ids look alike. */
  async function access(
    principal: Principal,
    serviceId: string,
    permission: Permission,
  ): Promise<{ service: ServiceRow; grant: ProjectGrant }> {
    const found = await repo.findServiceAccess(db, serviceId, principal.userId);
    const grant = authorize(principal, found?.access, permission, SERVICE_NOT_FOUND);
    if (found === undefined) throw new AppError('SERVICE_NOT_FOUND', SERVICE_NOT_FOUND.message);
    return { service: found.service, grant };
  }

  function checkVariables(entries: Array<[string, string]>): void {
    const total = entries.reduce(
      (sum, [name, value]) => sum + name.length + Buffer.byteLength(value) + 2,
      0,
    );
    if (total > MAX_TOTAL_BYTES) {
      throw new AppError(
        'ENV_VAR_INVALID',
        `A service's variables may take at most ${MAX_TOTAL_BYTES} bytes together`,
      );
    }
    if (entries.length > MAX_VARIABLES) {
      throw new AppError(
        'ENV_VAR_INVALID',
        `A service may have at most ${MAX_VARIABLES} variables`,
      );
    }
    for (const [name, value] of entries) {
      validateEnvName(name);
      if (RESERVED_VARIABLES.has(name)) {
        throw new AppError(
          'ENV_VAR_INVALID',
          `Variable "${name}" is set by the platform and cannot be overridden`,
          { details: { name } },
        );
      }
      if (Buffer.byteLength(value) > MAX_VALUE_BYTES) {
        throw new AppError(
          'ENV_VAR_INVALID',
          `Variable "${name}" is longer than ${MAX_VALUE_BYTES} bytes, more than a process environment entry may hold`,
          { details: { name } },
        );
      }
      if (value.includes('\0')) {
        throw new AppError(
          'ENV_VAR_INVALID',
          `Variable "${name}" contains a NUL byte, which no process environment can hold`,
          { details: { name } },
        );
      }
    }
  }

  async function getVariables(serviceId: string) {
    const rows = await repo.listVariables(db, serviceId);
    const latest = rows.reduce<Date | null>(
      (max, row) => (max === null || row.updated_at > max ? row.updated_at : max),
      null,
    );
    return {
      variables: Object.fromEntries(rows.map((row) => [row.name, row.value])),
      updatedAt: latest?.toISOString() ?? null,
    };
  }

  return {
    access,

    async create(principal: Principal, project: string, input: CreateServiceBody) {
      const grant = await projects.access(principal, project, 'service.write');
      const git = await checkGitUrl(input.gitUrl, deps.gitPolicy, deps.resolver, principal);
      const row = await inTransaction(db, async (trx) => {
        const created = await repo.insertService(trx, {
          projectId: grant.projectId,
          name: input.name,
          gitUrl: git.url,
          branch: input.branch ?? 'main',
          build: input.build ?? {},
          runtime: { ...DEFAULT_RUNTIME, ...input.runtime },
        });
        if (created !== undefined)
          await recordChange(
            trx,
            principal,
            grant,
            'service.create',
            created,
            diffFields(null, serviceFields(created)),
          );
        return created;
      });
      if (row === undefined)
        throw new AppError(
          'SERVICE_NAME_TAKEN',
          `The project already has a service named "${input.name}"`,
        );
      logger.info({ serviceId: row.id, projectId: grant.projectId }, 'service created');
      return toServiceResponse(row);
    },

    async list(principal: Principal, project: string, page: PageRequest) {
      const grant = await projects.access(principal, project, 'project.read');
      const rows = await repo.listServices(db, grant.projectId, page);
      return toPage(rows, page, rowPosition, toServiceResponse);
    },

    async get(principal: Principal, serviceId: string) {
      const { service } = await access(principal, serviceId, 'project.read');
      return toServiceResponse(service);
    },

    async update(principal: Principal, serviceId: string, input: UpdateServiceBody) {
      const { service, grant } = await access(principal, serviceId, 'service.write');
      const gitUrl =
        input.gitUrl === undefined
          ? undefined
          : (await checkGitUrl(input.gitUrl, deps.gitPolicy, deps.resolver, principal)).url;
      const row = await inTransaction(db, async (trx) => {
        const updated = await repo.updateService(trx, service.id, {
          ...(gitUrl === undefined ? {} : { gitUrl }),
          ...(input.branch === undefined ? {} : { branch: input.branch }),
          ...(input.build === undefined ? {} : { build: input.build }),
          ...(input.runtime === undefined
            ? {}
            : { runtime: { ...service.runtime, ...input.runtime } }),
        });
        if (updated !== undefined)
          await recordChange(
            trx,
            principal,
            grant,
            'service.update',
            updated,
            diffFields(serviceFields(service), serviceFields(updated)),
          );
        return updated;
      });
      if (row === undefined) throw new AppError('SERVICE_NOT_FOUND', SERVICE_NOT_FOUND.message);
      logger.info({ serviceId: row.id }, 'service updated');
      return toServiceResponse(row);
    },

    async remove(
      principal: Principal,
      serviceId: string,
      stopWorkloads: (serviceId: string) => Promise<void>,
    ) {
      const { service, grant } = await access(principal, serviceId, 'service.delete');
      await stopWorkloads(service.id);
      await inTransaction(db, async (trx) => {
        await repo.deleteService(trx, service.id);
        await recordChange(trx, principal, grant, 'service.delete', service, {});
      });
      logger.info({ serviceId: service.id }, 'service deleted');
    },

    async getVariables(principal: Principal, serviceId: string) {
      const { service } = await access(principal, serviceId, 'variables.read');
      return getVariables(service.id);
    },

    async putVariables(principal: Principal, serviceId: string, variables: Record<string, string>) {
      const { service, grant } = await access(principal, serviceId, 'variables.write');
      const entries = Object.entries(variables);
      checkVariables(entries);
      const before = (await getVariables(service.id)).variables;
      await inTransaction(db, async (trx) => {
        await repo.replaceVariables(trx, service.id, entries);
        await recordChange(
          trx,
          principal,
          grant,
          'service.variables.replace',
          service,
          variableDiff(before, variables),
        );
      });
      logger.info({ serviceId: service.id, count: entries.length }, 'variables replaced');
      return getVariables(service.id);
    },

    /** Merges a .env file into the variables; later duplicates in the file win. */
    async importVariables(principal: Principal, serviceId: string, text: string) {
      const { service, grant } = await access(principal, serviceId, 'variables.write');
      const entries = parseDotenv(text).map((entry): [string, string] => [entry.name, entry.value]);
      checkVariables(entries);
      const before = (await getVariables(service.id)).variables;
      // What the service will hold once merged must fit too.
      checkVariables(Object.entries({ ...before, ...Object.fromEntries(entries) }));
      await inTransaction(db, async (trx) => {
        await repo.mergeVariables(trx, service.id, entries);
        await recordChange(
          trx,
          principal,
          grant,
          'service.variables.import',
          service,
          variableDiff(before, { ...before, ...Object.fromEntries(entries) }),
        );
      });
      logger.info({ serviceId: service.id, count: entries.length }, 'variables imported');
      return getVariables(service.id);
    },

    /** The variables as a plain map, for build and release snapshots. */
    async variablesOf(serviceId: string): Promise<Record<string, string>> {
      return (await getVariables(serviceId)).variables;
    },
  };
}

export type ServiceService = ReturnType<typeof createServiceService>;
