import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { authorize } from '../access/access.service.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db } from '../platform/db/transaction.js';
import { roleFor } from '../audit/audit-actor.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import { pause, type ServerSentEvent } from '../platform/http/sse.js';
import type { Queue } from '../platform/queue.js';
import type { Metrics } from '../platform/metrics.js';
import type { ServiceService } from '../services/service.service.js';
import { getServiceById } from '../services/service.repository.js';
import * as repo from './build.repository.js';
import { BUILD_RUN, type BuildRunPayload } from './build.jobs.js';
import { toBuildResponse } from './build.schema.js';
import { BuildFailedError, runLocalBuild } from './local-builder.js';
import type { GitCredentials } from './git.js';
import type { RunAs } from '../platform/workload-users.js';

const BUILD_NOT_FOUND = { code: 'BUILD_NOT_FOUND', message: 'Build not found' } as const;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const LOG_FLUSH_MS = 200;
const LOG_BATCH = 200;

export function createBuildService(deps: {
  db: Db;
  logger: Logger;
  queue: Queue;
  metrics: Metrics;
  services: ServiceService;
  dataDir: string;
  timeoutMs: number;
  /** Lockbox: values to redact from build output (the service's known secret values). */
  secretValues?: (serviceId: string) => Promise<string[]>;
  /** Platform git credentials for a service's repository URL (its own host's only). */
  gitCredentials?: (gitUrl: string, serviceId: string) => Promise<GitCredentials | undefined>;
  /** The user a project's builds run as, by its workload slot; undefined runs them as us. */
  workloadUser?: (slot: number) => RunAs | undefined;
  /** This process as a worker: claims carry its id; claims of workers silent for staleMs lapse. */
  worker: { id: string; staleMs: number };
  audit: AuditRecorder;
}) {
  const { db, logger, queue } = deps;
  const gitCredentialsFor = async (gitUrl: string, serviceId: string) => {
    const credentials = await deps.gitCredentials?.(gitUrl, serviceId);
    return credentials === undefined ? {} : { gitCredentials: credentials };
  };
  const workloadUserOf = async (projectId: string) => {
    if (deps.workloadUser === undefined) return undefined;
    const slot = await repo.findProjectWorkloadSlot(db, projectId);
    // Without its project there is no user to build as, and Switchyard's own is no fallback.
    if (slot === undefined) throw new BuildFailedError('cancelled', 'the project was deleted');
    return deps.workloadUser(slot);
  };

  async function access(principal: Principal, buildId: string) {
    const found = await repo.findBuildAccess(db, buildId, principal.userId);
    authorize(principal, found?.access, 'project.read', BUILD_NOT_FOUND);
    if (found === undefined) throw new AppError('BUILD_NOT_FOUND', BUILD_NOT_FOUND.message);
    return found.build;
  }

  /** Buffers build output and writes it in batches, numbered in order. */
  function createLogWriter(buildId: string, firstSeq: number) {
    let seq = firstSeq;
    let pending: Array<{ seq: number; line: string }> = [];
    let flushing = Promise.resolve();
    const flush = () => {
      const batch = pending;
      pending = [];
      flushing = flushing
        .then(() => repo.appendBuildLogs(db, buildId, batch))
        .catch((error: unknown) => logger.warn({ err: error, buildId }, 'build log write failed'));
      return flushing;
    };
    const timer = setInterval(() => void flush(), LOG_FLUSH_MS);
    return {
      write(line: string) {
        pending.push({ seq: seq++, line });
        if (pending.length >= LOG_BATCH) void flush();
      },
      async close() {
        clearInterval(timer);
        await flush();
      },
    };
  }

  return {
    async create(principal: Principal, serviceId: string, input: { ref?: string }) {
      const { service, grant } = await deps.services.access(principal, serviceId, 'build.create');
      const build = await inTransaction(db, async (trx) => {
        const row = await repo.insertBuild(trx, {
          serviceId: service.id,
          ref: input.ref ?? service.branch,
          createdBy: principal.userId,
        });
        await queue.send(BUILD_RUN, { buildId: row.id }, { trx });
        await deps.audit.recordIn(trx, {
          action: 'build.create',
          resource: { type: 'build', id: row.id, name: service.name },
          projectId: service.project_id,
          actorRole: roleFor(principal, grant),
          details: { serviceId: service.id, ref: row.ref },
        });
        return row;
      });
      logger.info(
        { buildId: build.id, serviceId: service.id, userId: principal.userId },
        'build queued',
      );
      return { id: build.id, status: build.status, statusUrl: `/v1/builds/${build.id}` };
    },

    async list(principal: Principal, serviceId: string, page: PageRequest) {
      const { service } = await deps.services.access(principal, serviceId, 'project.read');
      const rows = await repo.listBuilds(db, service.id, page);
      return toPage(rows, page, rowPosition, toBuildResponse);
    },

    async get(principal: Principal, buildId: string) {
      return toBuildResponse(await access(principal, buildId));
    },

    /** Build output so far, and with `follow` new lines until the build ends. */
    async logs(principal: Principal, buildId: string) {
      const build = await access(principal, buildId);
      const lines = await repo.readBuildLogs(db, build.id, -1, 10_000);
      return {
        status: build.status,
        lines: lines.map((line) => ({
          seq: line.seq,
          line: line.line,
          at: line.created_at.toISOString(),
        })),
      };
    },

    async followLogs(principal: Principal, buildId: string) {
      const build = await access(principal, buildId);
      return async function* stream(signal: AbortSignal): AsyncIterable<ServerSentEvent> {
        let lastSeq = -1;
        while (!signal.aborted) {
          const lines = await repo.readBuildLogs(db, build.id, lastSeq, 500);
          for (const line of lines) {
            lastSeq = line.seq;
            yield { event: 'log', id: String(line.seq), data: { seq: line.seq, line: line.line } };
          }
          if (lines.length === 500) continue;
          const current = await repo.getBuildById(db, build.id);
          if (current === undefined || TERMINAL.has(current.status)) {
            // One more read: lines flushed just before the status changed.
            const rest = await repo.readBuildLogs(db, build.id, lastSeq, 10_000);
            for (const line of rest)
              yield {
                event: 'log',
                id: String(line.seq),
                data: { seq: line.seq, line: line.line },
              };
            yield {
              event: 'end',
              data: current === undefined ? { status: 'deleted' } : toBuildResponse(current),
            };
            return;
          }
          await pause(300, signal);
        }
      };
    },

    /**
     * The build.run job: clone, build, record the artifact as a release. Idempotent: a
     * finished build is left alone, and a retry after a crash builds again from scratch.
     */
    async run(payload: BuildRunPayload, signal: AbortSignal): Promise<void> {
      const started = await repo.claimBuild(
        db,
        payload.buildId,
        deps.worker.id,
        deps.worker.staleMs,
      );
      if (started === undefined) return;
      const service = await getServiceById(db, started.service_id);
      if (service === undefined) return;
      const log = logger.child({
        buildId: started.id,
        serviceId: service.id,
        attempt: started.attempt,
      });
      const writer = createLogWriter(started.id, await repo.nextLogSeq(db, started.id));
      if (started.attempt > 1) writer.write(`-----> Retrying build (attempt ${started.attempt})`);
      const startedAt = performance.now();
      try {
        const variables = await deps.services.variablesOf(service.id);
        const result = await runLocalBuild({
          buildId: started.id,
          gitUrl: service.git_url,
          ref: started.ref,
          workRoot: join(deps.dataDir, 'builds'),
          artifactRoot: join(deps.dataDir, 'artifacts'),
          buildEnv: variables,
          secretValues: (await deps.secretValues?.(service.id)) ?? [],
          ...(await gitCredentialsFor(service.git_url, service.id)),
          runAs: await workloadUserOf(service.project_id),
          refusedLocalRoot: deps.dataDir,
          timeoutMs: deps.timeoutMs,
          signal,
          onLog: (line) => writer.write(line),
          logger: log,
        });
        const start =
          service.build.startCommand === undefined
            ? result.start
            : { command: '/bin/sh', args: ['-c', service.build.startCommand] };
        const release = await inTransaction(db, async (trx) => {
          const row = await repo.insertRelease(trx, {
            serviceId: service.id,
            buildId: started.id,
            commitSha: result.commitSha,
            digest: result.digest,
            artifactPath: result.artifactPath,
            kind: result.kind,
            start,
            config: variables,
          });
          await repo.finishBuild(trx, started.id, {
            status: 'succeeded',
            commitSha: result.commitSha,
          });
          return row;
        });
        writer.write(`-----> Release v${release.version} created (${result.digest})`);
        deps.metrics.buildsTotal.labels('succeeded').inc();
        log.info(
          {
            releaseId: release.id,
            version: release.version,
            durationMs: Math.round(performance.now() - startedAt),
          },
          'build succeeded',
        );
      } catch (error) {
        if (!(error instanceof BuildFailedError)) throw error;
        writer.write(`-----> Build failed: ${error.message}`);
        await repo.finishBuild(db, started.id, {
          status: error.reason === 'cancelled' ? 'cancelled' : 'failed',
          failureReason: `${error.reason}: ${error.message}`,
        });
        deps.metrics.buildsTotal.labels('failed').inc();
        log.info({ reason: error.reason }, 'build failed');
      } finally {
        await writer.close();
      }
    },
  };
}

export type BuildService = ReturnType<typeof createBuildService>;
