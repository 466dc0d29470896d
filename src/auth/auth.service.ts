import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { UserRow } from '../platform/db/schema.js';
import type { Config } from '../platform/config.js';
import type { KeyRing } from './keys.js';
import type { PasswordHasher } from './password.js';
import type { DenyList } from './deny-list.js';
import type { SignInGuard, GuardContext } from './sign-in-guard.js';
import type { ApiTokenService } from './api-token.service.js';
import type { Principal } from './principal.js';
import type { SessionMethod, SessionTransport } from './auth.tables.js';
import * as repo from './auth.repository.js';
import { isCsrfTokenValid, newCsrfToken } from './cookies.js';
import { recordSecurityEvent } from './security-events.js';
import { hashOpaqueToken, newRefreshToken, signAccessToken } from './tokens.js';
import { createAccessTokenVerifier } from './token-verifier.js';

export type { Principal } from './principal.js';

export type AuthSettings = Config['auth'];

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/** A new session: the tokens, and for browser sessions the CSRF token (shown once). */
export interface IssuedSession extends TokenPair {
  sessionId: string;
  csrfToken: string | undefined;
  refreshExpiresIn: number;
}

export interface ClientInfo {
  ip: string;
  userAgent: string | undefined;
  requestId?: string;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const badCredentials = () =>
  new AppError('AUTHENTICATION_FAILED', 'The email or password is incorrect');
const badRefreshToken = () =>
  new AppError('AUTHENTICATION_FAILED', 'The refresh token is invalid or expired');
const revoked = () => new AppError('AUTHENTICATION_FAILED', 'The access token has been revoked');

const contextOf = (client: ClientInfo): GuardContext => ({
  clientIp: client.ip,
  requestId: client.requestId,
});

export function createAuthService(deps: {
  db: Db;
  keys: KeyRing;
  settings: AuthSettings;
  logger: Logger;
  hasher: PasswordHasher;
  denyList: DenyList;
  guard: SignInGuard;
  apiTokens: ApiTokenService;
}) {
  const { db, keys, settings, logger, hasher, denyList, guard } = deps;
  const accessTokens = createAccessTokenVerifier(keys, settings);

  async function signFor(user: UserRow, sessionId: string, csrfHash: string | null) {
    return signAccessToken(keys, settings, {
      userId: user.id,
      sessionId,
      isInstanceAdmin: user.is_instance_admin,
      csrfHash: csrfHash ?? undefined,
    });
  }

  /** Starts a session for a user who proved who they are (password or single sign-on). */
  async function startSession(
    user: UserRow,
    how: { method: SessionMethod; transport: SessionTransport },
    client: ClientInfo,
  ): Promise<IssuedSession> {
    const sessionId = randomUUID();
    const refresh = newRefreshToken();
    const csrf = how.transport === 'cookie' ? newCsrfToken() : undefined;
    await repo.insertSession(
      db,
      {
        id: sessionId,
        userId: user.id,
        method: how.method,
        transport: how.transport,
        csrfTokenHash: csrf?.hash ?? null,
        userAgent: client.userAgent,
        clientIp: client.ip,
        expiresAt: new Date(Date.now() + settings.refreshTokenTtlSeconds * 1000),
      },
      refresh.hash,
    );
    const access = await signFor(user, sessionId, csrf?.hash ?? null);
    recordSecurityEvent(
      logger,
      { type: 'sign_in.succeeded', userId: user.id, sessionId, method: how.method },
      contextOf(client),
    );
    return {
      sessionId,
      accessToken: access.token,
      refreshToken: refresh.token,
      tokenType: 'Bearer',
      expiresIn: access.expiresIn,
      refreshExpiresIn: settings.refreshTokenTtlSeconds,
      csrfToken: csrf?.token,
    };
  }

  /** Revokes sessions in the database and puts them on every replica's deny list. */
  async function revokeSessions(
    target: Parameters<typeof repo.revokeSessions>[1],
    reason: Parameters<typeof repo.revokeSessions>[2],
  ): Promise<string[]> {
    const ids = await repo.revokeSessions(db, target, reason);
    await denyList.denySessions(ids);
    if (ids.length > 0) {
      recordSecurityEvent(logger, {
        type: 'session.revoked',
        userId: target.userId,
        sessionIds: ids,
        reason,
      });
    }
    return ids;
  }

  async function rejectReusedToken(
    result: { sessionId: string; userId: string },
    client: ClientInfo,
  ) {
    await revokeSessions(
      { userId: result.userId, sessionIds: [result.sessionId] },
      'refresh_reused',
    );
    recordSecurityEvent(
      logger,
      { type: 'refresh_token.reused', userId: result.userId, sessionId: result.sessionId },
      contextOf(client),
    );
  }

  async function authenticateSession(token: string, transport: SessionTransport) {
    const claims = await accessTokens.verify(token);
    if (denyList.isDenied(claims.tokenId, claims.sessionId)) throw revoked();
    const principal: Principal = {
      userId: claims.userId,
      isInstanceAdmin: claims.isInstanceAdmin,
      credential: {
        kind: 'session',
        sessionId: claims.sessionId,
        tokenId: claims.tokenId,
        expiresAt: claims.expiresAt,
        transport,
      },
    };
    return { principal, csrfHash: claims.csrfHash };
  }

  return {
    startSession,
    revokeSessions,

    /**
     * Signs in with email and password. Unknown emails, wrong passwords and disabled
     * accounts get the same answer after the same work; failures count toward lockout.
     */
    async login(
      input: { email: string; password: string },
      client: ClientInfo,
      transport: SessionTransport,
    ): Promise<IssuedSession> {
      const email = input.email.trim().toLowerCase();
      const context = contextOf(client);
      await guard.checkRate('login', context, email);
      await guard.assertNotLocked(email, context);
      const user = await repo.findUserByEmail(db, email);
      const isValid = await hasher.verify(user?.password_hash, input.password);
      if (user === undefined || !isValid || user.status !== 'active') {
        await guard.recordFailure(email, context);
        const reason = isValid && user !== undefined ? 'disabled' : 'bad_credentials';
        recordSecurityEvent(logger, { type: 'sign_in.failed', reason }, context);
        throw badCredentials();
      }
      await guard.recordSuccess(email);
      if (hasher.needsRehash(user.password_hash)) {
        await repo.updatePasswordHash(db, user.id, await hasher.hash(input.password));
      }
      return startSession(user, { method: 'password', transport }, client);
    },

    /**
     * Rotates a refresh token. A spent token revokes its whole session and is recorded as a
     * security event. Browser sessions refresh through the cookie route with their CSRF token.
     */
    async refresh(
      refreshToken: string,
      client: ClientInfo,
      transport: SessionTransport,
      csrfHeader?: string | string[],
    ): Promise<IssuedSession> {
      const context = contextOf(client);
      await guard.checkRate('refresh', context);
      const hash = hashOpaqueToken(refreshToken);
      const session = await repo.findSessionByRefreshToken(db, hash);
      if (session === undefined || session.transport !== transport) throw badRefreshToken();
      await guard.checkAccountRate('refresh', context, session.user_id);
      if (
        transport === 'cookie' &&
        !isCsrfTokenValid(csrfHeader, session.csrf_token_hash ?? undefined)
      ) {
        recordSecurityEvent(
          logger,
          { type: 'csrf.rejected', userId: session.user_id, sessionId: session.id },
          context,
        );
        throw new AppError(
          'CSRF_TOKEN_INVALID',
          "Send the session's CSRF token in the X-CSRF-Token header",
        );
      }

      const next = newRefreshToken();
      const result = await repo.rotateRefreshToken(db, hash, {
        hash: next.hash,
        expiresAt: new Date(Date.now() + settings.refreshTokenTtlSeconds * 1000),
        userAgent: client.userAgent,
        clientIp: client.ip,
      });
      if (result.outcome === 'reused') await rejectReusedToken(result, client);
      if (result.outcome !== 'ok') throw badRefreshToken();

      const user = await repo.findUserById(db, result.session.user_id);
      if (user === undefined || user.status !== 'active') throw badRefreshToken();
      const access = await signFor(user, result.session.id, result.session.csrf_token_hash);
      return {
        sessionId: result.session.id,
        accessToken: access.token,
        refreshToken: next.token,
        tokenType: 'Bearer',
        expiresIn: access.expiresIn,
        refreshExpiresIn: settings.refreshTokenTtlSeconds,
        csrfToken:
          typeof csrfHeader === 'string' && transport === 'cookie' ? csrfHeader : undefined,
      };
    },

    /** Ends the caller's session: its refresh tokens, this access token and any other of it. */
    async logout(principal: Principal): Promise<void> {
      const { credential } = principal;
      if (credential.kind !== 'session') return;
      await denyList.denyToken(credential.tokenId, credential.expiresAt);
      await revokeSessions(
        { userId: principal.userId, sessionIds: [credential.sessionId] },
        'logout',
      );
      logger.info({ userId: principal.userId, sessionId: credential.sessionId }, 'user signed out');
    },

    /**
     * Resolves a bearer credential (an access token, or an API token starting `syt_`) to a
     * principal, or throws 401. Access tokens are checked against the in-memory deny list.
     */
    async authenticate(token: string): Promise<Principal> {
      if (token.startsWith('syt_')) return deps.apiTokens.authenticate(token);
      return (await authenticateSession(token, 'bearer')).principal;
    },

    /**
     * Resolves the access-token cookie of a browser session. Requests other than GET, HEAD
     * and OPTIONS must carry the session's CSRF token, or get 403 CSRF_TOKEN_INVALID.
     */
    async authenticateCookie(
      token: string,
      request: { method: string; csrfHeader: string | string[] | undefined; clientIp: string },
    ): Promise<Principal> {
      const { principal, csrfHash } = await authenticateSession(token, 'cookie');
      if (SAFE_METHODS.has(request.method) || isCsrfTokenValid(request.csrfHeader, csrfHash))
        return principal;
      const sessionId =
        principal.credential.kind === 'session' ? principal.credential.sessionId : '';
      recordSecurityEvent(
        logger,
        { type: 'csrf.rejected', userId: principal.userId, sessionId },
        { clientIp: request.clientIp },
      );
      throw new AppError(
        'CSRF_TOKEN_INVALID',
        "Send the session's CSRF token in the X-CSRF-Token header",
      );
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
