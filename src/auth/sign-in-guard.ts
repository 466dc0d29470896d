import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import type { IdentityConfig, LockoutPolicy } from './auth.config.js';
import * as repo from './auth.repository.js';
import type { RateLimiter } from './rate-limiter.js';
import { recordSecurityEvent, type SecurityEventContext } from './security-events.js';

export type GuardedAction = 'login' | 'refresh' | 'register';

/**
 * Sign-in protection: rate limits per client address and per account name on login,
 * refresh and registration, and lockout after repeated failed sign-ins. Account names are
 * hashed and treated alike whether an account exists or not, so neither limits nor locks
 * tell an attacker which emails have accounts.
 */
export interface SignInGuard {
  /** Counts one attempt; throws 429 RATE_LIMITED (with Retry-After) beyond either limit. */
  checkRate(action: GuardedAction, context: GuardContext, account?: string): Promise<void>;
  /** Counts one attempt against the account's limit only (the address was counted already). */
  checkAccountRate(action: GuardedAction, context: GuardContext, account: string): Promise<void>;
  /** Throws 429 RATE_LIMITED while the account name is locked. */
  assertNotLocked(email: string, context: GuardContext): Promise<void>;
  /** Counts a failed sign-in; locks the name for a growing interval past the threshold. */
  recordFailure(email: string, context: GuardContext): Promise<void>;
  recordSuccess(email: string): Promise<void>;
  /** Clears failures and any lock (an instance admin reset the password). */
  unlock(email: string): Promise<void>;
}

export interface GuardContext extends SecurityEventContext {
  clientIp: string;
}

const hashed = (value: string) => createHash('sha256').update(`switchyard:${value}`).digest('hex');

export const accountKey = (email: string) => hashed(email.trim().toLowerCase());

/** The lock after `failures` consecutive failures: base × 2^(failures − threshold), capped. */
export function lockSeconds(policy: LockoutPolicy, failures: number): number {
  if (failures < policy.threshold) return 0;
  const doublings = Math.min(failures - policy.threshold, 30);
  return Math.min(policy.maxSeconds, policy.baseSeconds * 2 ** doublings);
}

const rateLimited = (seconds: number, message: string) =>
  new AppError('RATE_LIMITED', message, {
    headers: { 'retry-after': String(seconds) },
    details: { retryAfterSeconds: seconds },
  });

export function createSignInGuard(deps: {
  db: Db;
  limiter: RateLimiter;
  settings: Pick<IdentityConfig, 'rateLimit' | 'lockout'>;
  logger: Logger;
}): SignInGuard {
  const { db, limiter, settings, logger } = deps;
  const { windowSeconds, perAddress, perAccount } = settings.rateLimit;

  async function hit(
    action: GuardedAction,
    context: GuardContext,
    limit: 'address' | 'account',
    subject: string,
  ) {
    const decision = await limiter.hit(
      `${action}:${limit}:${hashed(subject)}`,
      limit === 'address' ? perAddress : perAccount,
      windowSeconds,
    );
    if (decision.isAllowed) return;
    recordSecurityEvent(logger, { type: 'sign_in.rate_limited', action, limit }, context);
    throw rateLimited(
      decision.retryAfterSeconds,
      'Too many attempts; retry after the time in Retry-After',
    );
  }

  return {
    async checkRate(action, context, account) {
      await hit(action, context, 'address', context.clientIp);
      if (account !== undefined)
        await hit(action, context, 'account', account.trim().toLowerCase());
    },

    async checkAccountRate(action, context, account) {
      await hit(action, context, 'account', account);
    },

    async assertNotLocked(email, context) {
      const seconds = await repo.lockedForSeconds(db, accountKey(email));
      if (seconds <= 0) return;
      recordSecurityEvent(
        logger,
        { type: 'sign_in.locked_out', lockedForSeconds: seconds },
        context,
      );
      throw rateLimited(
        seconds,
        'Too many failed sign-ins for this account; retry after the time in Retry-After',
      );
    },

    async recordFailure(email, context) {
      const key = accountKey(email);
      const failures = await repo.addSignInFailure(db, key);
      const seconds = lockSeconds(settings.lockout, failures);
      if (seconds === 0) return;
      await repo.lockAccount(db, key, seconds);
      recordSecurityEvent(
        logger,
        { type: 'sign_in.locked_out', lockedForSeconds: seconds },
        context,
      );
    },

    async recordSuccess(email) {
      await repo.clearSignInFailures(db, accountKey(email));
    },

    async unlock(email) {
      await repo.clearSignInFailures(db, accountKey(email));
    },
  };
}
