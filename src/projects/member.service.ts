import type { Logger } from 'pino';
import type { Principal } from '../auth/auth.service.js';
import { markManual } from '../auth/oidc.repository.js';
import { logSecurityEvent, type SecurityEvent } from '../auth/security-events.js';
import { findUserByEmail, lockAccountCreation } from '../auth/auth.repository.js';
import { roleFor } from '../audit/audit-actor.js';
import { diffFields, type FieldDiff } from '../audit/audit-event.js';
import type { AuditRecorder } from '../audit/audit-recorder.js';
import { securityEventToAudit } from '../audit/audit-sources.js';
import {
  assertCanGrant,
  assertFutureExpiry,
  type GrantRequest,
  type ProjectGrant,
} from '../access/access.service.js';
import type { Permission } from '../access/permissions.js';
import { AppError } from '../platform/errors.js';
import { inTransaction, type Db, type Trx } from '../platform/db/transaction.js';
import type { EnvironmentRow, MemberRow, Role } from '../platform/db/schema.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import * as invitations from './invitation.repository.js';
import * as repo from './project.repository.js';
import { toInvitationResponse, toMemberAddedResponse, toMemberResponse } from './project.schema.js';

/** How long an invitation to an address without an account waits to be claimed. */
export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;

const memberExists = () =>
  new AppError('MEMBER_EXISTS', 'That address is already a member or has a pending invitation');
const memberNotFound = () => new AppError('MEMBER_NOT_FOUND', 'Member not found');

const memberFields = (
  member: Pick<MemberRow, 'role' | 'environment_id' | 'expires_at'> | undefined,
) =>
  member === undefined
    ? null
    : { role: member.role, environmentId: member.environment_id, expiresAt: member.expires_at };

/**
 * Members and invitations of a project. Every change needs member.write (member.owner when
 * an owner grant is given, changed or removed), which a grant narrowed to one environment
 * never has, and nobody grants more than they hold (assertCanGrant).
 */
export function createMemberService(deps: {
  db: Db;
  logger: Logger;
  audit: AuditRecorder;
  access: (principal: Principal, project: string, permission: Permission) => Promise<ProjectGrant>;
  getEnvironment: (projectId: string, idOrName: string) => Promise<EnvironmentRow>;
}) {
  const { db, logger, audit, access, getEnvironment } = deps;

  /** Logs a membership change and records its audit event in `trx`, with the change. */
  async function memberChanged(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant,
    change: {
      memberId: string;
      kind: 'added' | 'role_changed' | 'removed';
      role: Role | null;
      diff: FieldDiff;
    },
  ) {
    const event: SecurityEvent = {
      type: 'member.changed',
      projectId: grant.projectId,
      memberId: change.memberId,
      byUserId: principal.userId,
      change: change.kind,
      role: change.role,
      source: 'api',
    };
    logSecurityEvent(logger, event);
    await audit.recordIn(trx, {
      ...securityEventToAudit(event),
      actorRole: roleFor(principal, grant),
      diff: change.diff,
    });
  }

  async function environmentIdOf(grant: ProjectGrant, environment: string | null | undefined) {
    if (environment === undefined || environment === null) return null;
    return (await getEnvironment(grant.projectId, environment)).id;
  }

  /** Adds the account with `email` as a member; false when it already is one. */
  async function addAccount(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant,
    userId: string,
    request: GrantRequest,
  ): Promise<boolean> {
    const isAdded = await repo.insertMember(trx, {
      projectId: grant.projectId,
      userId,
      ...request,
    });
    if (!isAdded) return false;
    await memberChanged(trx, principal, grant, {
      memberId: userId,
      kind: 'added',
      role: request.role,
      diff: diffFields(null, { ...request }),
    });
    return true;
  }

  /** Invites an address without an account; false when it has a pending invitation. */
  async function invite(
    trx: Trx,
    principal: Principal,
    grant: ProjectGrant,
    email: string,
    request: GrantRequest,
  ): Promise<boolean> {
    const row = await invitations.insertInvitation(trx, {
      projectId: grant.projectId,
      email,
      ...request,
      inviteExpiresAt: new Date(Date.now() + INVITATION_TTL_MS),
      invitedBy: principal.userId,
    });
    if (row === undefined) return false;
    await audit.recordIn(trx, {
      action: 'member.invite',
      resource: { type: 'invitation', id: row.id, name: email },
      projectId: grant.projectId,
      environmentId: request.environmentId,
      actorRole: roleFor(principal, grant),
      diff: diffFields(null, { ...request }),
    });
    logger.info({ projectId: grant.projectId, invitationId: row.id }, 'member invited');
    return true;
  }

  return {
    async listMembers(principal: Principal, project: string, page: PageRequest) {
      const grant = await access(principal, project, 'member.read');
      const rows = await repo.listMembers(db, grant.projectId, page);
      return toPage(
        rows,
        page,
        (row) => ({ at: row.cursor_at, id: row.user_id }),
        toMemberResponse,
      );
    },

    /**
     * Adds a member by email. The answer is the same whether or not the address has an
     * account: an account becomes a member now; an address without one gets an invitation
     * that becomes the membership when its account is created. 409 MEMBER_EXISTS when the
     * address is a member or invited already (both of which the caller can list).
     */
    async addMember(
      principal: Principal,
      project: string,
      input: { email: string; role: Role; environment?: string; expiresAt?: string },
    ) {
      const permission = input.role === 'owner' ? 'member.owner' : 'member.write';
      const grant = await access(principal, project, permission);
      const email = input.email.trim().toLowerCase();
      const request: GrantRequest = {
        role: input.role,
        environmentId: await environmentIdOf(grant, input.environment),
        expiresAt: input.expiresAt === undefined ? null : new Date(input.expiresAt),
      };
      assertFutureExpiry(request.expiresAt);
      assertCanGrant(grant, request);

      await inTransaction(db, async (trx) => {
        // Under the account-creation lock, so no account appears between lookup and invitation.
        await lockAccountCreation(trx);
        const user = await findUserByEmail(trx, email);
        const isDone =
          user === undefined
            ? await invite(trx, principal, grant, email, request)
            : await addAccount(trx, principal, grant, user.id, request);
        if (!isDone) throw memberExists();
      });
      return toMemberAddedResponse(email, request);
    },

    async updateMember(
      principal: Principal,
      project: string,
      userId: string,
      input: { role: Role; environment?: string | null; expiresAt?: string | null },
    ) {
      const grant = await access(principal, project, 'member.write');
      const existing = await repo.findMember(db, grant.projectId, userId);
      if (existing === undefined) throw memberNotFound();
      if (existing.role === 'owner' || input.role === 'owner') {
        await access(principal, project, 'member.owner');
      }
      const request: GrantRequest = {
        role: input.role,
        environmentId:
          input.environment === undefined
            ? existing.environment_id
            : await environmentIdOf(grant, input.environment),
        expiresAt:
          input.expiresAt === undefined
            ? existing.expires_at
            : input.expiresAt === null
              ? null
              : new Date(input.expiresAt),
      };
      if (input.expiresAt !== undefined) assertFutureExpiry(request.expiresAt);
      assertCanGrant(grant, request);

      await inTransaction(db, async (trx) => {
        const outcome = await repo.changeMember(trx, grant.projectId, userId, request);
        if (outcome === 'last_owner')
          throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be demoted');
        if (outcome === 'missing') throw memberNotFound();
        // A person changed this grant: single sign-on no longer manages it.
        await markManual(trx, grant.projectId, userId);
        await memberChanged(trx, principal, grant, {
          memberId: userId,
          kind: 'role_changed',
          role: input.role,
          diff: diffFields(memberFields(existing), { ...request }),
        });
      });
      const member = await repo.findMember(db, grant.projectId, userId);
      if (member === undefined) throw memberNotFound();
      return toMemberResponse(member);
    },

    async removeMember(principal: Principal, project: string, userId: string) {
      const grant = await access(principal, project, 'member.write');
      const existing = await repo.findMember(db, grant.projectId, userId);
      if (existing === undefined) throw memberNotFound();
      if (existing.role === 'owner') await access(principal, project, 'member.owner');
      await inTransaction(db, async (trx) => {
        const outcome = await repo.changeMember(trx, grant.projectId, userId, 'remove');
        if (outcome === 'last_owner')
          throw new AppError('MEMBER_LAST_OWNER', 'The last owner cannot be removed');
        await memberChanged(trx, principal, grant, {
          memberId: userId,
          kind: 'removed',
          role: null,
          diff: diffFields(memberFields(existing), null),
        });
      });
      logger.info({ projectId: grant.projectId, memberId: userId }, 'member removed');
    },

    /** Pending invitations, for those who may manage members. */
    async listInvitations(principal: Principal, project: string, page: PageRequest) {
      const grant = await access(principal, project, 'invitation.read');
      const rows = await invitations.listPendingInvitations(db, grant.projectId, page);
      return toPage(rows, page, rowPosition, toInvitationResponse);
    },

    /** Withdraws a pending invitation; 404 INVITATION_NOT_FOUND when there is none. */
    async revokeInvitation(principal: Principal, project: string, invitationId: string) {
      const grant = await access(principal, project, 'member.write');
      await inTransaction(db, async (trx) => {
        const row = await invitations.deleteInvitation(trx, grant.projectId, invitationId);
        if (row === undefined)
          throw new AppError('INVITATION_NOT_FOUND', 'No pending invitation with that id');
        if (row.role === 'owner') await access(principal, project, 'member.owner');
        await audit.recordIn(trx, {
          action: 'member.invite_revoke',
          resource: { type: 'invitation', id: row.id, name: row.email },
          projectId: grant.projectId,
          environmentId: row.environment_id,
          actorRole: roleFor(principal, grant),
          diff: diffFields({ role: row.role }, null),
        });
      });
    },
  };
}
