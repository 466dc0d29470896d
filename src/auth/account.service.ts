import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { UserRow } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import { assertScope, assertSignedInPerson, assertUnrestricted } from '../access/scopes.js';
import type { UserSessionRow } from './auth.tables.js';
import type { AuthService, ClientInfo } from './auth.service.js';
import type { PasswordHasher } from './password.js';
import type { Principal } from './principal.js';
import type { SignInGuard } from './sign-in-guard.js';
import * as repo from './auth.repository.js';
import { recordSecurityEvent } from './security-events.js';

export interface UserResponse {
  id: string;
  email: string;
  name: string;
  isInstanceAdmin: boolean;
  createdAt: string;
}

export interface AdminUserResponse extends UserResponse {
  disabled: boolean;
}

export function toUserResponse(user: UserRow): UserResponse {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    isInstanceAdmin: user.is_instance_admin,
    createdAt: user.created_at.toISOString(),
  };
}

export function toAdminUserResponse(user: UserRow): AdminUserResponse {
  return { ...toUserResponse(user), disabled: user.status === 'disabled' };
}

export function toSessionResponse(row: UserSessionRow, currentSessionId: string | undefined) {
  return {
    id: row.id,
    method: row.method,
    transport: row.transport,
    userAgent: row.user_agent,
    clientIp: row.client_ip,
    createdAt: row.created_at.toISOString(),
    lastUsedAt: row.last_used_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    isCurrent: row.id === currentSessionId,
  };
}

/**
 * The caller's own account (profile, sessions, password) and instance administration of
 * users (disable, reset a password). Every change that takes access away revokes sessions
 * in the database and on every replica's deny list before it answers.
 */
export function createAccountService(deps: {
  db: Db;
  logger: Logger;
  auth: AuthService;
  hasher: PasswordHasher;
  guard: SignInGuard;
}) {
  const { db, logger, auth, hasher, guard } = deps;

  async function getUser(userId: string): Promise<UserRow> {
    const user = await repo.findUserById(db, userId);
    if (user === undefined) throw new AppError('USER_NOT_FOUND', 'User not found');
    return user;
  }

  function assertInstanceAdmin(principal: Principal): void {
    if (!principal.isInstanceAdmin) {
      throw new AppError('FORBIDDEN', 'Only instance administrators may manage users');
    }
    assertUnrestricted(principal);
    assertScope(principal, 'admin');
  }

  return {
    async me(principal: Principal) {
      return toUserResponse(await getUser(principal.userId));
    },

    async listSessions(principal: Principal, page: PageRequest) {
      assertSignedInPerson(principal);
      const current =
        principal.credential.kind === 'session' ? principal.credential.sessionId : undefined;
      const rows = await repo.listSessions(db, principal.userId, page);
      return toPage(rows, page, rowPosition, (row) => toSessionResponse(row, current));
    },

    /** Revokes one of the caller's live sessions; 404 SESSION_NOT_FOUND for any other id. */
    async revokeSession(principal: Principal, sessionId: string): Promise<void> {
      assertSignedInPerson(principal);
      const ids = await auth.revokeSessions(
        { userId: principal.userId, sessionIds: [sessionId] },
        'revoked',
      );
      if (ids.length === 0) throw new AppError('SESSION_NOT_FOUND', 'Session not found');
    },

    /** Changes the caller's password and signs out every other session of theirs. */
    async changePassword(
      principal: Principal,
      input: { currentPassword: string; newPassword: string },
      client: ClientInfo,
    ): Promise<void> {
      assertSignedInPerson(principal);
      const user = await getUser(principal.userId);
      const context = { clientIp: client.ip, requestId: client.requestId };
      await guard.checkRate('login', context, user.email);
      if (!(await hasher.verify(user.password_hash, input.currentPassword))) {
        throw new AppError('AUTHENTICATION_FAILED', 'The current password is incorrect');
      }
      await repo.updatePasswordHash(db, user.id, await hasher.hash(input.newPassword));
      const current =
        principal.credential.kind === 'session' ? principal.credential.sessionId : undefined;
      await auth.revokeSessions({ userId: user.id, exceptSessionId: current }, 'password_changed');
      recordSecurityEvent(
        logger,
        { type: 'password.changed', userId: user.id, byAdmin: false },
        context,
      );
    },

    async listUsers(principal: Principal, page: PageRequest) {
      assertInstanceAdmin(principal);
      const rows = await repo.listUsers(db, page);
      return toPage(rows, page, rowPosition, toAdminUserResponse);
    },

    /**
     * Creates an account, active at once: the admin vouches for the address. 409
     * ACCOUNT_EXISTS when the address has one (an admin may know that).
     */
    async createUser(
      principal: Principal,
      input: { email: string; password: string; name: string },
    ) {
      assertInstanceAdmin(principal);
      const passwordHash = await hasher.hash(input.password);
      const user = await repo.insertUser(db, {
        email: input.email.trim().toLowerCase(),
        name: input.name.trim(),
        passwordHash,
      });
      if (user === undefined) {
        throw new AppError('ACCOUNT_EXISTS', 'An account with that email already exists');
      }
      recordSecurityEvent(logger, {
        type: 'user.created',
        userId: user.id,
        via: 'admin',
        byUserId: principal.userId,
      });
      return toAdminUserResponse(user);
    },

    /**
     * Disables or enables a user, or sets a new password. Disabling signs them out
     * everywhere at once; a new password does too and lifts any sign-in lockout.
     */
    async updateUser(
      principal: Principal,
      userId: string,
      input: { disabled?: boolean; password?: string },
    ) {
      assertInstanceAdmin(principal);
      let user = await getUser(userId);
      if (input.disabled !== undefined) {
        const updated = await repo.setUserStatus(
          db,
          userId,
          input.disabled ? 'disabled' : 'active',
        );
        if (updated === 'last_admin') {
          throw new AppError(
            'USER_LAST_ADMIN',
            'The last active instance administrator cannot be disabled',
          );
        }
        if (updated === undefined) throw new AppError('USER_NOT_FOUND', 'User not found');
        user = updated;
        if (input.disabled) await auth.revokeSessions({ userId }, 'user_disabled');
        const type = input.disabled ? 'user.disabled' : 'user.enabled';
        recordSecurityEvent(logger, { type, userId, byUserId: principal.userId });
      }
      if (input.password !== undefined) {
        await repo.updatePasswordHash(db, userId, await hasher.hash(input.password));
        await auth.revokeSessions({ userId }, 'password_reset');
        await guard.unlock(user.email);
        recordSecurityEvent(logger, { type: 'password.changed', userId, byAdmin: true });
      }
      return toAdminUserResponse(user);
    },
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
