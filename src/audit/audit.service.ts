import type { KeyRing } from '../auth/keys.js';
import type { Principal } from '../auth/principal.js';
import { assertScope, restrictedProjectOf } from '../access/scopes.js';
import { findProjectAccess } from '../access/access.repository.js';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { Page } from '../platform/http/pagination.js';
import type { Checkpointer } from './audit-checkpoints.js';
import { csvLines, exportLines, ndjsonLines } from './audit-export.js';
import type { AuditRecorder } from './audit-recorder.js';
import { verifyChain, type VerifyReport } from './audit-verify.js';
import {
  listAuditGrants,
  listEvents,
  type EventFilters,
  type Visibility,
} from './audit.repository.js';
import {
  AUDIT_FILTERS,
  toAuditEventResponse,
  type AuditEventQuery,
  type AuditExportQuery,
} from './audit.schema.js';
import type { AuditEventRow } from './audit.tables.js';

const PAGING = new Set(['limit', 'cursor']);
const ALLOWED = new Set<string>([...AUDIT_FILTERS, ...PAGING]);
const EXPORT_ALLOWED = new Set(['format', 'from', 'to', 'project']);
const PROJECT_NOT_FOUND = 'Project not found';
// An export of more than a year at once is refused: ask for it in parts.
const MAX_EXPORT_MS = 366 * 24 * 3600 * 1000;

/** Refuses query keys outside the whitelist, naming them; they never reach SQL. */
export function assertKnownFilters(query: object, allowed: ReadonlySet<string>): void {
  const unknown = Object.keys(query).filter((key) => !allowed.has(key));
  if (unknown.length === 0) return;
  throw new AppError(
    'INVALID_FILTER',
    `Unknown filter${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
    {
      details: { unknown, allowed: [...allowed].filter((key) => !PAGING.has(key)) },
    },
  );
}

function encodeSeqCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`, 'utf8').toString('base64url');
}

function decodeSeqCursor(raw: string): number {
  const match = /^seq:([1-9][0-9]{0,15})$/.exec(Buffer.from(raw, 'base64url').toString('utf8'));
  const seq = Number(match?.[1]);
  if (match === null || !Number.isSafeInteger(seq))
    throw new AppError('INVALID_CURSOR', 'The cursor is not one this API issued');
  return seq;
}

function isInGrants(
  visibility: Visibility,
  row: { project_id: string | null; environment_id: string | null },
): boolean {
  if (visibility.kind === 'all') return true;
  return visibility.grants.some(
    (grant) =>
      grant.projectId === row.project_id &&
      (grant.environmentId === null || grant.environmentId === row.environment_id),
  );
}

export function createAuditService(deps: {
  db: Db;
  keys: KeyRing;
  checkpointer: Checkpointer;
  recorder: AuditRecorder;
}) {
  const { db } = deps;

  /**
   * Instance admins see every event; anyone else the events of projects where they are an
   * Owner or Admin (narrowed to their environment if their grant is). A project-restricted
   * API token sees at most its project's. API tokens need the admin scope.
   */
  async function visibilityFor(principal: Principal): Promise<Visibility> {
    assertScope(principal, 'admin');
    const onlyProject = restrictedProjectOf(principal);
    if (principal.isInstanceAdmin && onlyProject === undefined) return { kind: 'all' };
    if (principal.isInstanceAdmin)
      return { kind: 'grants', grants: [{ projectId: onlyProject ?? '', environmentId: null }] };
    const grants = await listAuditGrants(db, principal.userId);
    return {
      kind: 'grants',
      grants:
        onlyProject === undefined
          ? grants
          : grants.filter((grant) => grant.projectId === onlyProject),
    };
  }

  /** The project a filter names, if the reader may see its events; else 404 or 403. */
  async function projectFilter(
    principal: Principal,
    visibility: Visibility,
    project: string,
  ): Promise<string> {
    const access = await findProjectAccess(db, project, principal.userId);
    if (access === undefined) throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND);
    if (
      visibility.kind === 'all' ||
      visibility.grants.some((grant) => grant.projectId === access.projectId)
    )
      return access.projectId;
    if (access.role === null || restrictedProjectOf(principal) !== undefined)
      throw new AppError('PROJECT_NOT_FOUND', PROJECT_NOT_FOUND);
    throw new AppError(
      'FORBIDDEN',
      'Only Owners and Admins of a project can read its audit events',
      { details: { role: access.role } },
    );
  }

  async function toFilters(
    principal: Principal,
    visibility: Visibility,
    query: AuditEventQuery,
  ): Promise<EventFilters> {
    const filters: EventFilters = {};
    if (query.actor !== undefined) filters.actorId = query.actor;
    if (query.action !== undefined) filters.action = query.action;
    if (query.resourceType !== undefined) filters.resourceType = query.resourceType;
    if (query.resourceId !== undefined) filters.resourceId = query.resourceId;
    if (query.environment !== undefined) filters.environmentId = query.environment;
    if (query.outcome !== undefined) filters.outcome = query.outcome;
    if (query.from !== undefined) filters.from = new Date(query.from);
    if (query.to !== undefined) filters.to = new Date(query.to);
    if (query.project !== undefined)
      filters.projectId = await projectFilter(principal, visibility, query.project);
    return filters;
  }

  return {
    /** A page of the events the caller may see, newest first. */
    async list(
      principal: Principal,
      query: AuditEventQuery,
    ): Promise<Page<ReturnType<typeof toAuditEventResponse>>> {
      assertKnownFilters(query, ALLOWED);
      const visibility = await visibilityFor(principal);
      const filters = await toFilters(principal, visibility, query);
      const limit = query.limit ?? 20;
      const beforeSeq = query.cursor === undefined ? undefined : decodeSeqCursor(query.cursor);
      const rows = await listEvents(db, visibility, filters, { limit, beforeSeq });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        data: page.map(toAuditEventResponse),
        nextCursor:
          rows.length > limit && last !== undefined ? encodeSeqCursor(Number(last.seq)) : null,
      };
    },

    /** Walks the whole chain; for instance admins (it covers every project). */
    async verify(principal: Principal): Promise<VerifyReport> {
      const visibility = await visibilityFor(principal);
      if (visibility.kind !== 'all')
        throw new AppError('FORBIDDEN', 'Only instance admins can verify the whole audit chain');
      return verifyChain(db, deps.keys);
    },

    /**
     * Streams the events of a time range as NDJSON (verifiable offline) or CSV, a page at a
     * time. Events the caller may not see appear in NDJSON as hash-only links, so the chain
     * still verifies. The export itself is recorded.
     */
    async export(principal: Principal, query: AuditExportQuery) {
      assertKnownFilters(query, EXPORT_ALLOWED);
      const from = new Date(query.from);
      const to = new Date(query.to);
      if (!(from < to) || to.getTime() - from.getTime() > MAX_EXPORT_MS) {
        throw new AppError(
          'VALIDATION_FAILED',
          '`from` must be before `to`, at most 366 days apart',
          { details: [{ in: 'querystring', path: '/to' }] },
        );
      }
      const visibility = await visibilityFor(principal);
      const projectId =
        query.project === undefined
          ? undefined
          : await projectFilter(principal, visibility, query.project);
      const isVisible = (row: AuditEventRow) =>
        isInGrants(visibility, row) && (projectId === undefined || row.project_id === projectId);
      const format = query.format ?? 'ndjson';
      deps.recorder.record({
        action: 'audit.export',
        resource: { type: 'audit_events' },
        projectId: projectId ?? null,
        details: { from: query.from, to: query.to, format },
      });

      const lines = exportLines(db, {
        from,
        to,
        isVisible,
        checkpointFrom: async () => deps.checkpointer.checkpoint(),
      });
      return {
        format,
        contentType: format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
        fileName: `switchyard-audit-${query.from.slice(0, 10)}-${query.to.slice(0, 10)}.${format}`,
        body: format === 'csv' ? csvLines(lines) : ndjsonLines(lines),
      };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
