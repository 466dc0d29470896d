import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { KeyRing } from './keys.js';
import { hashPassword, verifyPassword } from './password.js';
import * as repo from './auth.repository.js';
import {
  hashOpaqueToken,
  newRefreshToken,
  signAccessToken,
  verifyAccessToken,
  type AccessClaims,
  type TokenSettings,
} from './tokens.js';

export interface AuthSettings extends TokenSettings {
  refreshTokenTtlSeconds: number;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

export interface ClientInfo {
  ip: string;
  userAgent: string | undefined;
}

/** Who is calling: resolved once per request by the authentication hook. */
export interface Principal {
  userId: string;
  email: string;
  name: string;
  isInstanceAdmin: boolean;
  tokenId: string;
  sessionId: string;
  tokenExpiresAt: Date;
}

const badCredentials = () =>
  new AppError('AUTHENTICATION_FAILED', 'The email or password is incorrect');

export function createAuthService(deps: {
  db: Db;
  keys: KeyRing;
  settings: AuthSettings;
  logger: Logger;
}) {
  const { db, keys, settings, logger } = deps;

  async function issueTokens(userId: string, familyId: string, client: ClientInfo): Promise<TokenPair> {
    const refresh = newRefreshToken();
    await repo.insertSession(db, {
      userId,
      familyId,
      refreshTokenHash: refresh.hash,
      expiresAt: new Date(Date.now() + settings.refreshTokenTtlSeconds * 1000),
      userAgent: client.userAgent,
      clientIp: client.ip,
    });
    const access = await signAccessToken(keys, settings, { userId, sessionId: familyId });
    return {
      accessToken: access.token,
      refreshToken: refresh.token,
      tokenType: 'Bearer',
      expiresIn: access.expiresIn,
    };
  }

  return {
    async register(input: { email: string; password: string; name: string }) {
      const email = input.email.trim().toLowerCase();
      const passwordHash = await hashPassword(input.password);
      const user = await repo.insertUser(db, { email, name: input.name.trim(), passwordHash });
      if (user === undefined) {
        throw new AppError('ACCOUNT_EXISTS', 'An account with that email already exists');
      }
      logger.info({ userId: user.id, isInstanceAdmin: user.is_instance_admin }, 'user registered');
      return user;
    },

    async login(input: { email: string; password: string }, client: ClientInfo): Promise<TokenPair> {
      const user = await repo.findUserByEmail(db, input.email.trim().toLowerCase());
      const isValid = await verifyPassword(user?.password_hash, input.password);
      if (user === undefined || !isValid || user.status !== 'active') {
        logger.info({ clientIp: client.ip }, 'sign-in refused');
        throw badCredentials();
      }
      logger.info({ userId: user.id }, 'user signed in');
      return issueTokens(user.id, randomUUID(), client);
    },

    async refresh(refreshToken: string, client: ClientInfo): Promise<TokenPair> {
      const result = await repo.consumeRefreshToken(db, hashOpaqueToken(refreshToken));
      if (result.outcome === 'reused') {
        await repo.revokeFamily(db, result.familyId);
        logger.warn({ userId: result.userId, sessionId: result.familyId }, 'refresh token reused; session revoked');
      }
      if (result.outcome !== 'ok') {
        throw new AppError('AUTHENTICATION_FAILED', 'The refresh token is invalid or expired');
      }
      const user = await repo.findUserById(db, result.userId);
      if (user === undefined || user.status !== 'active') {
        throw new AppError('AUTHENTICATION_FAILED', 'The refresh token is invalid or expired');
      }
      return issueTokens(result.userId, result.familyId, client);
    },

    async getUser(userId: string) {
      const user = await repo.findUserById(db, userId);
      if (user === undefined) throw new AppError('USER_NOT_FOUND', 'User not found');
      return user;
    },

    async logout(principal: Principal): Promise<void> {
      await repo.revokeFamily(db, principal.sessionId);
      await repo.revokeAccessToken(db, principal.tokenId, principal.tokenExpiresAt);
      logger.info({ userId: principal.userId, sessionId: principal.sessionId }, 'user signed out');
    },

    /** Resolves a bearer token to a principal, or throws 401. Checks revocation and status. */
    async authenticate(token: string): Promise<Principal> {
      const claims: AccessClaims = await verifyAccessToken(keys, settings, token);
      const found = await repo.findPrincipal(db, claims.userId, claims.tokenId, claims.sessionId);
      if (found === undefined || found.status !== 'active' || found.isRevoked) {
        throw new AppError('AUTHENTICATION_FAILED', 'The access token has been revoked');
      }
      return {
        userId: found.id,
        email: found.email,
        name: found.name,
        isInstanceAdmin: found.isInstanceAdmin,
        tokenId: claims.tokenId,
        sessionId: claims.sessionId,
        tokenExpiresAt: claims.expiresAt,
      };
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
