import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import {
  assertEnvironmentInScope,
  authorize,
  type ProjectGrant,
} from '../access/access.service.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import { roleFor } from '../audit/audit-actor.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import type { DeploymentKind, ReleaseRow } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import type { ServerSentEvent } from '../platform/http/sse.js';
import type { Queue } from '../platform/queue.js';
import type { ProjectService } from '../projects/project.service.js';
import type { ServiceService } from '../services/service.service.js';
import { insertRelease } from '../builds/build.repository.js';
import { findLatestRelease, getReleaseById } from '../releases/release.repository.js';
import type { RuntimeDriver } from '../runtime/runtime.js';
import * as repo from './deployment.repository.js';
import { DEPLOYMENT_RECONCILE } from './deployment.jobs.js';
import { toDeploymentResponse } from './deployment.schema.js';
import { hostnameFor, type Reconciler } from './reconciler.js';

const DEPLOYMENT_NOT_FOUND = {
  code: 'DEPLOYMENT_NOT_FOUND',
  message: 'Deployment not found',
} as const;

function sameConfig(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => b[key] === a[key]);
}

export function createDeploymentService(deps: {
  db: Db;
  logger: Logger;
  queue: Queue;
  projects: ProjectService;
  services: ServiceService;
  baseDomain: string;
  routerPort: number;
  /** Present in processes that run workloads (role all or worker). */
  runtime: RuntimeDriver | undefined;
  reconciler: Reconciler | undefined;
  audit: AuditRecorder;
}) {
  const { db, logger, queue } = deps;

  /**
   * Loads a deployment the caller may read. With `isOwnEnvironmentOnly` (its workload's
   * output), a grant narrowed to another environment gets 403.
   */
  async function access(principal: Principal, deploymentId: string, isOwnEnvironmentOnly = false) {
    const found = await repo.findDeploymentAccess(db, deploymentId, principal.userId);
    const grant = authorize(principal, found?.access, 'project.read', DEPLOYMENT_NOT_FOUND);
    if (found === undefined)
      throw new AppError('DEPLOYMENT_NOT_FOUND', DEPLOYMENT_NOT_FOUND.message);
    if (isOwnEnvironmentOnly) assertEnvironmentInScope(grant, found.deployment.environment_id);
    return found.deployment;
  }

  /**
   * The release to deploy when none is named: the newest, or, when the service's
   * configuration changed since, a new release of the same artifact with the current values.
   */
  async function currentRelease(serviceId: string): Promise<ReleaseRow> {
    const latest = await findLatestRelease(db, serviceId);
    if (latest === undefined)
      throw new AppError('RELEASE_UNAVAILABLE', 'The service has no release yet; build it first');
    const variables = await deps.services.variablesOf(serviceId);
    if (sameConfig(variables, latest.config_snapshot)) return latest;
    return inTransaction(db, (trx) =>
      insertRelease(trx, {
        serviceId,
        buildId: latest.build_id,
        commitSha: latest.commit_sha,
        digest: latest.digest,
        artifactPath: latest.artifact_path,
        kind: latest.kind,
        start: latest.start_command,
        config: variables,
      }),
    );
  }

  async function enqueue(
    principal: Principal,
    input: {
      serviceId: string;
      environmentId: string;
      release: ReleaseRow;
      kind: DeploymentKind;
      replicas: number;
    },
    audited: {
      grant: ProjectGrant;
      serviceName: string;
      projectId: string;
      environmentName: string;
    },
  ) {
    const deployment = await inTransaction(db, async (trx) => {
      const row = await repo.insertDeployment(trx, {
        serviceId: input.serviceId,
        environmentId: input.environmentId,
        releaseId: input.release.id,
        kind: input.kind,
        replicas: input.replicas,
        createdBy: principal.userId,
      });
      await queue.send(DEPLOYMENT_RECONCILE, { deploymentId: row.id }, { trx });
      await deps.audit.recordIn(trx, {
        action: input.kind === 'rollback' ? 'deployment.rollback' : 'deployment.create',
        resource: {
          type: 'deployment',
          id: row.id,
          name: `${audited.serviceName}/${audited.environmentName}`,
        },
        projectId: audited.projectId,
        environmentId: input.environmentId,
        actorRole: roleFor(principal, audited.grant),
        details: {
          serviceId: input.serviceId,
          releaseId: input.release.id,
          releaseVersion: input.release.version,
          replicas: input.replicas,
        },
      });
      return row;
    });
    logger.info(
      {
        deploymentId: deployment.id,
        serviceId: input.serviceId,
        releaseId: input.release.id,
        kind: input.kind,
        userId: principal.userId,
      },
      'deployment queued',
    );
    return {
      id: deployment.id,
      status: deployment.status,
      statusUrl: `/v1/deployments/${deployment.id}`,
    };
  }

  return {
    async create(
      principal: Principal,
      serviceId: string,
      input: { environment: string; releaseId?: string; replicas?: number },
    ) {
      const { service, grant } = await deps.services.access(
        principal,
        serviceId,
        'deployment.create',
      );
      const environment = await deps.projects.getEnvironment(grant.projectId, input.environment);
      assertEnvironmentInScope(grant, environment.id);
      let release: ReleaseRow | undefined;
      if (input.releaseId === undefined) release = await currentRelease(service.id);
      else release = await getReleaseById(db, input.releaseId);
      if (release === undefined || release.service_id !== service.id) {
        throw new AppError('RELEASE_NOT_FOUND', 'No such release of this service');
      }
      const replicas = input.replicas ?? service.runtime.instances;
      const audited = {
        grant,
        serviceName: service.name,
        projectId: service.project_id,
        environmentName: environment.name,
      };
      return enqueue(
        principal,
        { serviceId: service.id, environmentId: environment.id, release, kind: 'deploy', replicas },
        audited,
      );
    },

    async rollback(
      principal: Principal,
      serviceId: string,
      input: { environment: string; releaseId?: string },
    ) {
      const { service, grant } = await deps.services.access(
        principal,
        serviceId,
        'deployment.create',
      );
      const environment = await deps.projects.getEnvironment(grant.projectId, input.environment);
      assertEnvironmentInScope(grant, environment.id);
      const live = await repo.findLiveDeployment(db, service.id, environment.id);
      const releaseId =
        input.releaseId ??
        (await repo.findPreviousRelease(db, service.id, environment.id, live?.release_id));
      const release = releaseId === undefined ? undefined : await getReleaseById(db, releaseId);
      if (release === undefined || release.service_id !== service.id) {
        throw new AppError(
          'ROLLBACK_TARGET_INVALID',
          `No earlier release of this service was live in "${environment.name}"`,
        );
      }
      const replicas = live?.replicas ?? service.runtime.instances;
      const audited = {
        grant,
        serviceName: service.name,
        projectId: service.project_id,
        environmentName: environment.name,
      };
      return enqueue(
        principal,
        {
          serviceId: service.id,
          environmentId: environment.id,
          release,
          kind: 'rollback',
          replicas,
        },
        audited,
      );
    },

    async list(principal: Principal, serviceId: string, page: PageRequest, environment?: string) {
      const { service, grant } = await deps.services.access(principal, serviceId, 'project.read');
      const environmentId =
        environment === undefined
          ? undefined
          : (await deps.projects.getEnvironment(grant.projectId, environment)).id;
      const rows = await repo.listDeployments(db, service.id, page, environmentId);
      return toPage(rows, page, rowPosition, toDeploymentResponse);
    },

    async get(principal: Principal, deploymentId: string) {
      return toDeploymentResponse(await access(principal, deploymentId));
    },

    async status(principal: Principal, serviceId: string, environmentName: string) {
      const { service, grant } = await deps.services.access(principal, serviceId, 'project.read');
      const environment = await deps.projects.getEnvironment(grant.projectId, environmentName);
      const live = await repo.findLiveDeployment(db, service.id, environment.id);
      const release = live === undefined ? undefined : await getReleaseById(db, live.release_id);
      const instances =
        live === undefined || deps.runtime === undefined ? [] : deps.runtime.status(live.id);
      const host = hostnameFor(
        { service: service.name, environment: environment.name, project: grant.projectSlug },
        deps.baseDomain,
      );
      return {
        environment: environment.name,
        url: `http://${host}:${deps.routerPort}/`,
        isLive: live !== undefined,
        isHealthy:
          live !== undefined &&
          instances.length === live.replicas &&
          instances.every((i) => i.state === 'healthy'),
        liveSince: live?.live_at?.toISOString() ?? null,
        deployment: live === undefined ? null : toDeploymentResponse(live),
        release:
          release === undefined
            ? null
            : {
                id: release.id,
                version: release.version,
                commitSha: release.commit_sha,
                digest: release.digest,
              },
        instances: instances.map((i) => ({
          id: i.id,
          state: i.state,
          restarts: i.restarts,
          startedAt: i.startedAt.toISOString(),
        })),
      };
    },

    async logs(principal: Principal, deploymentId: string, tail: number | undefined) {
      const deployment = await access(principal, deploymentId, true);
      if (deps.runtime === undefined) return { lines: [] };
      const lines = [];
      const signal = AbortSignal.timeout(10_000);
      for await (const line of deps.runtime.logs(deployment.id, {
        follow: false,
        signal,
        ...(tail === undefined ? {} : { tail }),
      }))
        lines.push(line);
      return { lines };
    },

    async followLogs(principal: Principal, deploymentId: string, tail: number | undefined) {
      const deployment = await access(principal, deploymentId, true);
      const runtime = deps.runtime;
      return async function* stream(signal: AbortSignal): AsyncIterable<ServerSentEvent> {
        if (runtime === undefined) return;
        for await (const line of runtime.logs(deployment.id, {
          follow: true,
          signal,
          ...(tail === undefined ? {} : { tail }),
        })) {
          yield { event: 'log', data: line };
        }
      };
    },

    /** Stops every workload of a service (before it is deleted). */
    stopService: async (serviceId: string): Promise<void> => {
      const ids = await repo.listActiveDeploymentIds(db, { serviceId });
      const plans = (await Promise.all(ids.map((id) => repo.findDeploymentPlan(db, id)))).filter(
        (plan) => plan !== undefined,
      );
      await repo.markStopped(db, ids);
      await deps.reconciler?.stopDeployments(ids, plans);
    },

    hasActiveWorkloads: async (projectId: string): Promise<boolean> =>
      (await repo.listActiveDeploymentIds(db, { projectId })).length > 0,
  };
}

export type DeploymentService = ReturnType<typeof createDeploymentService>;
