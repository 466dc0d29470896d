import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { assertEnvironmentInScope, type ProjectGrant } from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import type { ProjectService } from '../projects/project.service.js';
import type { ServiceService } from '../services/service.service.js';
import {
  recordSecretAccess,
  recordSecretAccessIn,
  type SecretAccessEvent,
  type SecretAction,
} from './secret-audit.js';
import * as repo from './secret.repository.js';
import { hasRunningRotation } from './rotation.repository.js';
import { toSecretResponse, toVersionResponse } from './secret.schema.js';
import {
  scopeOf,
  type LockboxTrx,
  type SecretRow,
  type SecretScope,
  type SecretVersionState,
} from './secret.tables.js';
import type { SecretValueStore } from './value-store.js';
import { isPlatformSecret } from './platform-credentials.js';

/** How a route names a scope: a project, one of its environments, or a service. */
export type ScopeRef =
  | { kind: 'project'; project: string }
  | { kind: 'environment'; project: string; environment: string }
  | { kind: 'service'; serviceId: string };

export type SecretNeed = 'list' | 'read' | 'write' | 'destroy';

/** Who asks, and the request id their events carry. */
export interface Caller {
  principal: Principal;
  requestId?: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;
// Set by the platform for every instance; a secret must not shadow them.
const RESERVED = new Set(['PORT', 'HOST']);
export const MAX_SECRET_BYTES = 64 * 1024;

export function validateSecret(name: string, value?: Buffer): void {
  const isReservedName = name.startsWith('SWITCHYARD_') && !isPlatformSecret(name);
  if (!NAME.test(name) || RESERVED.has(name) || isReservedName) {
    throw new AppError(
      'SECRET_VALUE_INVALID',
      `"${name}" is not a usable secret name (letters, digits and _, not starting with a digit; PORT, HOST and SWITCHYARD_* are the platform's)`,
      {
        details: { field: 'name' },
      },
    );
  }
  if (value !== undefined && (value.length === 0 || value.length > MAX_SECRET_BYTES)) {
    throw new AppError(
      'SECRET_VALUE_INVALID',
      `A secret value must hold 1 to ${MAX_SECRET_BYTES} bytes`,
      { details: { field: 'value' } },
    );
  }
}

function permissionFor(kind: ScopeRef['kind'], need: SecretNeed): Permission {
  if (need === 'list') return 'secrets.list';
  if (need === 'destroy') return 'secrets.destroy';
  const level = kind === 'service' ? 'service' : 'shared';
  return `secrets.${need}.${level}`;
}

export function createSecretService(deps: {
  db: Db;
  logger: Logger;
  store: SecretValueStore;
  projects: ProjectService;
  services: ServiceService;
}) {
  const { logger, store } = deps;
  const db = repo.lockboxDb(deps.db);

  /** Resolves the scope and checks the caller may `need` in it. */
  async function resolve(
    caller: Caller,
    ref: ScopeRef,
    need: SecretNeed,
  ): Promise<{ scope: SecretScope; grant: ProjectGrant }> {
    const permission = permissionFor(ref.kind, need);
    if (ref.kind === 'service') {
      const { service, grant } = await deps.services.access(
        caller.principal,
        ref.serviceId,
        permission,
      );
      if (need !== 'list') assertWholeProject(grant);
      return {
        scope: { kind: 'service', projectId: service.project_id, serviceId: service.id },
        grant,
      };
    }
    const grant = await deps.projects.access(caller.principal, ref.project, permission);
    if (ref.kind === 'project') {
      if (need !== 'list') assertWholeProject(grant);
      return { scope: { kind: 'project', projectId: grant.projectId }, grant };
    }
    const environment = await deps.projects.getEnvironment(grant.projectId, ref.environment);
    assertEnvironmentInScope(grant, environment.id);
    return {
      scope: { kind: 'environment', projectId: grant.projectId, environmentId: environment.id },
      grant,
    };
  }

  async function getSecret(scope: SecretScope, name: string): Promise<SecretRow> {
    const row = await repo.findSecret(db, scope, name);
    if (row === undefined)
      throw new AppError('SECRET_NOT_FOUND', `No secret named "${name}" in this scope`);
    return row;
  }

  type AccessExtra = {
    version?: number;
    versions?: number[];
    deploymentId?: string;
    rotationId?: string;
    reason?: string;
  };

  function accessEvent(
    caller: Caller | undefined,
    action: SecretAction,
    secret: SecretRow,
    extra: AccessExtra,
  ): SecretAccessEvent {
    return {
      action,
      actor: caller?.principal.userId ?? 'system',
      secretId: secret.id,
      name: secret.name,
      scope: scopeOf(secret),
      ...(caller?.requestId === undefined ? {} : { requestId: caller.requestId }),
      ...extra,
    };
  }

  function record(
    caller: Caller | undefined,
    action: SecretAction,
    secret: SecretRow,
    extra: AccessExtra = {},
  ) {
    recordSecretAccess(logger, accessEvent(caller, action, secret, extra));
  }

  /** A write's audit event, in the transaction that makes the write. */
  async function recordIn(
    trx: Trx,
    caller: Caller | undefined,
    action: SecretAction,
    secret: SecretRow,
    extra: AccessExtra = {},
  ) {
    await recordSecretAccessIn(trx, logger, accessEvent(caller, action, secret, extra));
  }

  async function assertNotRotating(secret: SecretRow): Promise<void> {
    if (await hasRunningRotation(db, secret.id)) {
      throw new AppError(
        'SECRET_ROTATION_RUNNING',
        `"${secret.name}" is being rotated; wait for the rotation to finish`,
      );
    }
  }

  /**
   * Writes `value` as the next version of a secret, creating the secret on its first write.
   * `state` is `active` for a plain write (the others become superseded) or `pending` for a
   * rotation, which settles the states itself.
   */
  async function writeVersion(input: {
    scope: SecretScope;
    name: string;
    value: Buffer;
    createdBy: string | null;
    state: SecretVersionState;
    /** Runs in the same transaction once the version exists (a rotation records it). */
    within?: (trx: LockboxTrx, version: number, plainTrx: Trx) => Promise<void>;
  }) {
    return inTransaction(deps.db, async (plainTrx) => {
      const trx = repo.lockboxTrx(plainTrx);
      const existing = await repo.findSecret(trx, input.scope, input.name);
      const created =
        existing === undefined
          ? await repo.insertSecret(trx, {
              scope: input.scope,
              name: input.name,
              backend: store.backend,
              createdBy: input.createdBy,
            })
          : undefined;
      const locked = await repo.lockSecret(trx, (existing ?? created)?.id ?? '');
      if (locked === undefined)
        throw new AppError(
          'SECRET_CONFLICT',
          'The secret was created or deleted concurrently; retry',
        );
      const version = created === undefined ? locked.latest_version + 1 : 1;
      const stored = await store.put(locked.id, version, input.value);
      await repo.insertVersion(trx, {
        secretId: locked.id,
        version,
        state: input.state,
        stored,
        createdBy: input.createdBy,
      });
      if (input.state === 'active') await repo.supersedeOthers(trx, locked.id, version);
      const secret = await repo.setVersionPointers(trx, locked.id, {
        current: version,
        latest: version,
      });
      await input.within?.(trx, version, plainTrx);
      return { secret, version };
    });
  }

  return {
    resolve,
    writeVersion,
    getSecret,
    record,

    async list(caller: Caller, ref: ScopeRef, page: PageRequest) {
      const { scope } = await resolve(caller, ref, 'list');
      const rows = await repo.listSecrets(db, scope, page);
      return toPage(rows, page, (row) => ({ at: row.cursor_at, id: row.id }), toSecretResponse);
    },

    async get(caller: Caller, ref: ScopeRef, name: string) {
      const { scope } = await resolve(caller, ref, 'list');
      return toSecretResponse(await getSecret(scope, name));
    },

    async set(caller: Caller, ref: ScopeRef, name: string, value: Buffer) {
      validateSecret(name, value);
      const { scope } = await resolve(caller, ref, 'write');
      const existing = await repo.findSecret(db, scope, name);
      if (existing !== undefined) await assertNotRotating(existing);
      const { secret, version } = await writeVersion({
        scope,
        name,
        value,
        createdBy: caller.principal.userId,
        state: 'active',
        within: async (trx, written, plainTrx) => {
          const row = await repo.findSecret(trx, scope, name);
          if (row !== undefined)
            await recordIn(plainTrx, caller, 'write', row, { version: written });
        },
      });
      logger.info(
        { secretId: secret.id, version, userId: caller.principal.userId },
        'secret written',
      );
      return toSecretResponse(secret);
    },

    /** A version's value (the current one when `version` is absent); the read is recorded. */
    async readValue(caller: Caller, ref: ScopeRef, name: string, version?: number) {
      const { scope } = await resolve(caller, ref, 'read');
      const secret = await getSecret(scope, name);
      const wanted = version ?? secret.current_version;
      const row = await repo.findVersion(db, secret.id, wanted);
      if (row === undefined || row.state === 'destroyed') {
        throw new AppError(
          'SECRET_VERSION_NOT_FOUND',
          `"${name}" has no readable version ${wanted}`,
        );
      }
      const value = await store.get(secret.id, row);
      record(caller, 'read', secret, { version: wanted });
      return {
        name: secret.name,
        version: wanted,
        isCurrent: wanted === secret.current_version,
        value,
      };
    },

    async versions(caller: Caller, ref: ScopeRef, name: string) {
      const { scope } = await resolve(caller, ref, 'list');
      const secret = await getSecret(scope, name);
      const rows = await repo.listVersions(db, secret.id);
      return {
        name: secret.name,
        currentVersion: secret.current_version,
        data: rows.map((row) => toVersionResponse(row, secret)),
      };
    },

    /** Makes an earlier version current again; new deployments get it. */
    async restore(caller: Caller, ref: ScopeRef, name: string, version: number) {
      const { scope } = await resolve(caller, ref, 'write');
      const secret = await getSecret(scope, name);
      await assertNotRotating(secret);
      const row = await repo.findVersion(db, secret.id, version);
      if (row === undefined || row.state === 'destroyed') {
        throw new AppError(
          'SECRET_VERSION_NOT_FOUND',
          `"${name}" has no restorable version ${version}`,
        );
      }
      const updated = await inTransaction(deps.db, async (plainTrx) => {
        const trx = repo.lockboxTrx(plainTrx);
        await repo.setVersionState(trx, secret.id, [version], 'active');
        await repo.supersedeOthers(trx, secret.id, version);
        const row = await repo.setVersionPointers(trx, secret.id, { current: version });
        await recordIn(plainTrx, caller, 'restore', row, { version });
        return row;
      });
      return toSecretResponse(updated);
    },

    /** Destroys old versions for good (Owner only); the current version cannot be destroyed. */
    async destroyVersions(caller: Caller, ref: ScopeRef, name: string, versions: number[]) {
      const { scope } = await resolve(caller, ref, 'destroy');
      const secret = await getSecret(scope, name);
      if (versions.includes(secret.current_version)) {
        throw new AppError(
          'SECRET_VERSION_CURRENT',
          `Version ${secret.current_version} is current; restore or write another first`,
        );
      }
      const rows = await repo.findVersions(
        db,
        versions.map((version) => ({ secretId: secret.id, version })),
      );
      const live = rows.filter((row) => row.state !== 'destroyed');
      await store.destroy(secret.id, live);
      await inTransaction(deps.db, async (trx) => {
        await repo.markDestroyed(
          repo.lockboxTrx(trx),
          secret.id,
          live.map((row) => row.version),
        );
        await recordIn(trx, caller, 'destroy', secret, {
          versions: live.map((row) => row.version),
        });
      });
      return { destroyed: live.map((row) => row.version).sort((a, b) => a - b) };
    },

    async remove(caller: Caller, ref: ScopeRef, name: string) {
      const { scope } = await resolve(caller, ref, 'write');
      const secret = await getSecret(scope, name);
      await assertNotRotating(secret);
      await store.remove(secret.id);
      await inTransaction(deps.db, async (trx) => {
        await repo.deleteSecret(repo.lockboxTrx(trx), secret.id);
        await recordIn(trx, caller, 'delete', secret);
      });
    },
  };
}

/** Project and service secrets reach every environment; a grant narrowed to one may only list them. */
function assertWholeProject(grant: ProjectGrant): void {
  if (grant.environmentId !== null) {
    throw new AppError(
      'FORBIDDEN',
      'Your role is limited to one environment; project and service secrets reach every environment',
    );
  }
}

export type SecretService = ReturnType<typeof createSecretService>;
