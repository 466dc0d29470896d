import { sql } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import type { InvitationRow, Role } from '../platform/db/schema.js';
import { afterCursor, cursorPosition, fetchSize } from '../platform/db/keyset.js';
import type { PageRequest } from '../platform/http/pagination.js';

/**
 * Records an invitation unless the address already has one in the project. Expired ones are
 * deleted first, so an address can be invited again once its invitation lapsed. Returns
 * undefined when a pending invitation exists.
 */
export async function insertInvitation(
  db: Db,
  invitation: {
    projectId: string;
    email: string;
    role: Role;
    environmentId: string | null;
    expiresAt: Date | null;
    inviteExpiresAt: Date;
    invitedBy: string;
  },
): Promise<InvitationRow | undefined> {
  await db
    .deleteFrom('project_invitations')
    .where('project_id', '=', invitation.projectId)
    .where('invite_expires_at', '<=', sql<Date>`now()`)
    .execute();
  return db
    .insertInto('project_invitations')
    .values({
      project_id: invitation.projectId,
      email: invitation.email,
      role: invitation.role,
      environment_id: invitation.environmentId,
      expires_at: invitation.expiresAt,
      invite_expires_at: invitation.inviteExpiresAt,
      invited_by: invitation.invitedBy,
    })
    .onConflict((oc) => oc.columns(['project_id', 'email']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** A page of the project's pending (unexpired) invitations, newest first. */
export async function listPendingInvitations(db: Db, projectId: string, page: PageRequest) {
  let query = db
    .selectFrom('project_invitations')
    .selectAll()
    .select(cursorPosition('project_invitations'))
    .where('project_id', '=', projectId)
    .where('invite_expires_at', '>', sql<Date>`now()`);
  if (page.after !== undefined) query = query.where(afterCursor('project_invitations', page.after));
  return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(fetchSize(page)).execute();
}

/** Deletes one invitation of the project; returns it, or undefined when there was none. */
export async function deleteInvitation(
  db: Db,
  projectId: string,
  id: string,
): Promise<InvitationRow | undefined> {
  return db
    .deleteFrom('project_invitations')
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Turns every unexpired invitation to `email` into a membership of `userId`, and deletes the
 * address's invitations. Runs in the transaction that creates the account. A grant whose own
 * expiry passed meanwhile is dropped, not claimed. Returns the memberships created.
 */
export async function claimInvitations(
  db: Db,
  user: { id: string; email: string },
): Promise<Array<{ projectId: string; role: Role }>> {
  const invitations = await db
    .deleteFrom('project_invitations')
    .where('email', '=', user.email)
    .returningAll()
    .execute();
  const now = new Date();
  const claimable = invitations.filter(
    (row) => row.invite_expires_at > now && (row.expires_at === null || row.expires_at > now),
  );
  if (claimable.length === 0) return [];
  await db
    .insertInto('project_members')
    .values(
      claimable.map((row) => ({
        project_id: row.project_id,
        user_id: user.id,
        role: row.role,
        environment_id: row.environment_id,
        expires_at: row.expires_at,
      })),
    )
    .onConflict((oc) => oc.columns(['project_id', 'user_id']).doNothing())
    .execute();
  return claimable.map((row) => ({ projectId: row.project_id, role: row.role }));
}
