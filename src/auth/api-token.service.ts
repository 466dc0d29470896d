import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import { assertSignedInPerson } from '../access/scopes.js';
import type { ApiTokenRow, Scope } from './auth.tables.js';
import type { Principal } from './principal.js';
import * as repo from './api-token.repository.js';
import { recordSecurityEvent } from './security-events.js';
import { hashOpaqueToken } from './tokens.js';

export const API_TOKEN_PREFIX = 'syt_';

export interface CreateApiTokenInput {
  name: string;
  scopes: Scope[];
  /** A project id or slug the token is restricted to. */
  project?: string | undefined;
  expiresAt: string;
}

export interface ApiTokenResponse {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  projectId: string | null;
  expiresAt: string;
  lastUsedAt: string | null;
  createdAt: string;
}

export function toApiTokenResponse(row: ApiTokenRow): ApiTokenResponse {
  return {
    id: row.id,
    name: row.name,
    prefix: row.display_prefix,
    scopes: row.scopes,
    projectId: row.project_id,
    expiresAt: row.expires_at.toISOString(),
    lastUsedAt: row.last_used_at === null ? null : row.last_used_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

const invalidToken = () =>
  new AppError('AUTHENTICATION_FAILED', 'The API token is invalid, expired or revoked');

export function createApiTokenService(deps: {
  db: Db;
  logger: Logger;
  maxTtlDays: number;
  /** Resolves a project the caller can read to its id (404 otherwise). */
  resolveProject: (principal: Principal, project: string) => Promise<string>;
}) {
  const { db, logger } = deps;

  function checkExpiry(expiresAt: string, now = Date.now()): Date {
    const at = new Date(expiresAt);
    const latest = now + deps.maxTtlDays * 86_400_000;
    if (Number.isNaN(at.getTime()) || at.getTime() <= now || at.getTime() > latest) {
      throw new AppError(
        'VALIDATION_FAILED',
        `expiresAt must be in the future and at most ${deps.maxTtlDays} days away`,
        {
          details: [{ in: 'body', path: '/expiresAt', message: 'out of range' }],
        },
      );
    }
    return at;
  }

  return {
    /** Creates a token; the secret is in this answer only. */
    async create(principal: Principal, input: CreateApiTokenInput) {
      assertSignedInPerson(principal);
      const expiresAt = checkExpiry(input.expiresAt);
      const projectId =
        input.project === undefined ? null : await deps.resolveProject(principal, input.project);
      const secret = randomBytes(32).toString('base64url');
      const token = `${API_TOKEN_PREFIX}${secret}`;
      const row = await repo.insertApiToken(db, {
        userId: principal.userId,
        name: input.name,
        tokenHash: hashOpaqueToken(token),
        displayPrefix: `${API_TOKEN_PREFIX}${secret.slice(0, 8)}`,
        scopes: [...new Set(input.scopes)],
        projectId,
        expiresAt,
      });
      recordSecurityEvent(logger, {
        type: 'api_token.created',
        userId: principal.userId,
        apiTokenId: row.id,
        scopes: row.scopes,
        projectId,
      });
      return { ...toApiTokenResponse(row), token };
    },

    async list(principal: Principal, page: PageRequest) {
      assertSignedInPerson(principal);
      const rows = await repo.listApiTokens(db, principal.userId, page);
      return toPage(rows, page, rowPosition, toApiTokenResponse);
    },

    async revoke(principal: Principal, id: string): Promise<void> {
      assertSignedInPerson(principal);
      if (!(await repo.revokeApiToken(db, principal.userId, id))) {
        throw new AppError('API_TOKEN_NOT_FOUND', 'API token not found');
      }
      recordSecurityEvent(logger, {
        type: 'api_token.revoked',
        userId: principal.userId,
        apiTokenId: id,
      });
    },

    /** Resolves a `syt_` token to its owner, narrowed to the token's scopes; throws 401 otherwise. */
    async authenticate(token: string): Promise<Principal> {
      const row = await repo.findUsableApiToken(db, hashOpaqueToken(token));
      if (row === undefined) throw invalidToken();
      if (repo.isStale(row.last_used_at)) await repo.touchApiToken(db, row.id);
      return {
        userId: row.user_id,
        isInstanceAdmin: row.is_instance_admin,
        credential: {
          kind: 'api_token',
          apiTokenId: row.id,
          scopes: row.scopes,
          projectId: row.project_id,
        },
      };
    },
  };
}

export type ApiTokenService = ReturnType<typeof createApiTokenService>;
