import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import type { Queue } from '../platform/queue.js';
import type { SignUpPolicy } from './auth.config.js';
import type { ClientInfo } from './auth.service.js';
import type { PasswordHasher } from './password.js';
import type { SignInGuard } from './sign-in-guard.js';
import type { Mailer } from './mailer.js';
import { accountKey } from './sign-in-guard.js';
import { findUserByEmail, findUserById, insertUser } from './auth.repository.js';
import * as repo from './sign-up.repository.js';
import { IDENTITY_SIGN_UP_MAIL, type SignUpMailPayload } from './identity.jobs.js';
import { recordSecurityEvent } from './security-events.js';
import { toUserResponse } from './account.service.js';
import { hashOpaqueToken } from './tokens.js';

/**
 * The answer to every sign-up, whatever the address: what to do next depends on the
 * instance's sign-up mode only, never on whether the address has an account.
 */
export interface SignUpAccepted {
  status: 'accepted';
  next: 'sign_in' | 'verify_email';
  message: string;
}

const ACCEPTED: Record<'open' | 'verify', SignUpAccepted> = {
  open: {
    status: 'accepted',
    next: 'sign_in',
    message: 'If the address can be registered, the account is ready: sign in with it.',
  },
  verify: {
    status: 'accepted',
    next: 'verify_email',
    message:
      'If the address can be registered, a verification token is on its way to it: redeem it at POST /v1/auth/verify, then sign in.',
  },
};

const tokenRefused = () =>
  new AppError('SIGN_UP_TOKEN_INVALID', 'The verification token is invalid, used or expired');

type Outcome =
  | { kind: 'created'; userId: string; isInstanceAdmin: boolean }
  | { kind: 'pending'; signUpId: string }
  | { kind: 'email_taken'; userId: string | null };

/**
 * Sign-up without an account oracle. Every address gets the same answer after the same work:
 * the password is hashed, then one transaction looks the address up and either creates the
 * account (open), records a pending sign-up and queues its verification mail (verify), or,
 * when the address has an account, creates nothing (and in verify mode queues a notice to
 * the owner). Mail goes out from a worker, so SMTP latency never shows in the answer.
 */
export function createSignUpService(deps: {
  db: Db;
  logger: Logger;
  hasher: PasswordHasher;
  guard: SignInGuard;
  queue: Queue;
  policy: SignUpPolicy;
  mailer: Mailer | undefined;
}) {
  const { db, logger, hasher, guard, queue, policy } = deps;

  async function queueMail(trx: Trx, email: string, payload: SignUpMailPayload): Promise<void> {
    // One mail per address per interval, so nobody can flood a mailbox through this form.
    await queue.send(IDENTITY_SIGN_UP_MAIL, payload, {
      trx,
      singletonKey: `sign-up:${accountKey(email)}`,
      singletonSeconds: policy.mailIntervalSeconds,
    });
  }

  async function signUp(
    trx: Trx,
    input: { email: string; name: string; passwordHash: string },
  ): Promise<Outcome> {
    // Closed: the first account only (the instance's admin); later ones come from an admin.
    if (policy.mode === 'closed' && !(await repo.isFirstUser(trx))) {
      throw new AppError(
        'SIGN_UP_CLOSED',
        'Sign-up is closed: ask an instance admin for an account',
      );
    }
    const existing = await findUserByEmail(trx, input.email);
    if (existing !== undefined) {
      if (policy.mode === 'verify')
        await queueMail(trx, input.email, { kind: 'account_exists', userId: existing.id });
      return { kind: 'email_taken', userId: existing.id };
    }
    if (policy.mode === 'verify') {
      const expiresAt = new Date(Date.now() + policy.tokenTtlSeconds * 1000);
      const signUpId = await repo.insertPendingSignUp(trx, { ...input, expiresAt });
      await queueMail(trx, input.email, { kind: 'verify', signUpId });
      return { kind: 'pending', signUpId };
    }
    const user = await insertUser(trx, input);
    if (user === undefined) {
      const raced = await findUserByEmail(trx, input.email);
      return { kind: 'email_taken', userId: raced?.id ?? null };
    }
    return { kind: 'created', userId: user.id, isInstanceAdmin: user.is_instance_admin };
  }

  function report(outcome: Outcome, client: ClientInfo): void {
    const context = { clientIp: client.ip, requestId: client.requestId };
    switch (outcome.kind) {
      case 'created':
        recordSecurityEvent(
          logger,
          { type: 'user.created', userId: outcome.userId, via: 'sign_up', byUserId: null },
          context,
        );
        return;
      case 'pending':
        logger.info({ signUpId: outcome.signUpId }, 'sign-up awaits verification');
        return;
      case 'email_taken':
        recordSecurityEvent(
          logger,
          { type: 'sign_up.email_taken', userId: outcome.userId },
          context,
        );
        return;
    }
  }

  async function mailToken(signUpId: string, mailer: Mailer): Promise<void> {
    const token = `syv_${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(Date.now() + policy.tokenTtlSeconds * 1000);
    const email = await repo.setSignUpToken(db, signUpId, {
      hash: hashOpaqueToken(token),
      expiresAt,
    });
    if (email === undefined) return;
    await mailer.send({
      to: email,
      subject: 'Confirm your Switchyard account',
      text: verificationText(token, policy.tokenTtlSeconds),
    });
    logger.info({ signUpId }, 'sign-up verification mailed');
  }

  async function mailNotice(userId: string, mailer: Mailer): Promise<void> {
    const user = await findUserById(db, userId);
    if (user === undefined) return;
    await mailer.send({
      to: user.email,
      subject: 'Sign-up attempt with your address',
      text: NOTICE,
    });
    logger.info({ userId }, 'sign-up notice mailed to the existing account');
  }

  return {
    mode: policy.mode,

    /** Signs up; answers the same for every address (429 RATE_LIMITED, 403 SIGN_UP_CLOSED). */
    async register(
      input: { email: string; password: string; name: string },
      client: ClientInfo,
    ): Promise<SignUpAccepted> {
      const email = input.email.trim().toLowerCase();
      await guard.checkRate(
        'register',
        { clientIp: client.ip, requestId: client.requestId },
        email,
      );
      const passwordHash = await hasher.hash(input.password);
      const outcome = await inTransaction(db, (trx) =>
        signUp(trx, { email, name: input.name.trim(), passwordHash }),
      );
      report(outcome, client);
      return policy.mode === 'verify' ? ACCEPTED.verify : ACCEPTED.open;
    },

    /**
     * Redeems a mailed token: creates the account it was issued for and answers it. Unknown,
     * spent and expired tokens get 400 SIGN_UP_TOKEN_INVALID; an address that got an account
     * meanwhile, 409 ACCOUNT_EXISTS (the caller proved they own it).
     */
    async verify(token: string, client: ClientInfo) {
      const context = { clientIp: client.ip, requestId: client.requestId };
      await guard.checkRate('register', context);
      const result = await repo.redeemSignUpToken(db, hashOpaqueToken(token));
      if (result.outcome === 'invalid') {
        recordSecurityEvent(
          logger,
          { type: 'sign_up.token_refused', reason: result.reason },
          context,
        );
        throw tokenRefused();
      }
      if (result.outcome === 'account_exists') {
        throw new AppError('ACCOUNT_EXISTS', 'That address already has an account: sign in');
      }
      recordSecurityEvent(
        logger,
        { type: 'user.created', userId: result.user.id, via: 'verified_sign_up', byUserId: null },
        context,
      );
      return toUserResponse(result.user);
    },

    /** The worker side: sends one queued sign-up mail. Throws (and is retried) on SMTP errors. */
    async sendMail(payload: SignUpMailPayload): Promise<void> {
      if (deps.mailer === undefined) {
        logger.warn({ kind: payload.kind }, 'sign-up mail dropped: no SMTP server configured');
        return;
      }
      if (payload.kind === 'verify') await mailToken(payload.signUpId, deps.mailer);
      else await mailNotice(payload.userId, deps.mailer);
    },
  };
}

export type SignUpService = ReturnType<typeof createSignUpService>;

function verificationText(token: string, ttlSeconds: number): string {
  const hours = Math.round((ttlSeconds / 3600) * 10) / 10;
  return [
    'Someone, hopefully you, signed up for Switchyard with this address.',
    '',
    'To confirm it, run `switchyard verify` and paste this token when asked,',
    'or send it to the API as POST /v1/auth/verify {"token": "..."}:',
    '',
    `  ${token}`,
    '',
    `The token works once and expires in ${hours} hours. If you did not sign up,`,
    'ignore this mail: no account is created without it.',
    '',
  ].join('\n');
}

const NOTICE = [
  'Someone tried to sign up for Switchyard with this address, which already has an account.',
  'Nothing was changed and no new account was created.',
  '',
  'If it was you, sign in with your password (an instance admin can reset it).',
  'If it was not, you can ignore this mail.',
  '',
].join('\n');
