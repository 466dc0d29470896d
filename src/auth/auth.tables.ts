import type { ColumnType, Generated, Kysely, Selectable, Transaction } from 'kysely';
import type { Db } from '../platform/db/transaction.js';
import type { Role, Schema } from '../platform/db/schema.js';

/**
 * The tables of migration 0002 (identity), typed here and added to the shared schema with
 * Kysely's withTables, so the platform schema module stays untouched by this domain.
 *
 * Glossary: a *session* is one sign-in (user_sessions); its *refresh tokens* are the rows
 * of `sessions`, one per rotation, sharing the session id as family_id. An *API token* is a
 * personal access token for automation. A *denial* puts an access token or a whole session
 * on the deny list every replica reads.
 */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type SessionMethod = 'password' | 'oidc';
export type SessionTransport = 'bearer' | 'cookie';
export type RevokeReason =
  'logout' | 'revoked' | 'password_changed' | 'user_disabled' | 'refresh_reused' | 'password_reset';
export type DenialKind = 'token' | 'session';
export type Scope = 'read' | 'deploy' | 'write' | 'secrets' | 'admin';

export type UserSessionsTable = {
  id: string;
  user_id: string;
  method: ColumnType<SessionMethod, SessionMethod | undefined, SessionMethod>;
  transport: ColumnType<SessionTransport, SessionTransport | undefined, SessionTransport>;
  csrf_token_hash: string | null;
  user_agent: string | null;
  client_ip: string | null;
  created_at: Generated<Date>;
  last_used_at: Timestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  revoked_reason: RevokeReason | null;
};

export type AuthDenialsTable = {
  kind: DenialKind;
  subject: string;
  expires_at: Timestamp;
  created_at: Generated<Date>;
};

export type SignInFailuresTable = {
  account_key: string;
  failures: number;
  locked_until: Timestamp | null;
  last_failed_at: Timestamp;
};

export type ApiTokensTable = {
  id: Generated<string>;
  user_id: string;
  name: string;
  token_hash: string;
  display_prefix: string;
  scopes: ColumnType<Scope[], Scope[], Scope[]>;
  project_id: string | null;
  expires_at: Timestamp;
  last_used_at: Timestamp | null;
  created_at: Generated<Date>;
  revoked_at: Timestamp | null;
};

export type UserIdentitiesTable = {
  issuer: string;
  subject: string;
  user_id: string;
  created_at: Generated<Date>;
  last_sign_in_at: Timestamp;
};

export type ProjectGroupRolesTable = {
  project_id: string;
  group_name: string;
  role: Role;
  environment_id: string | null;
  created_at: Generated<Date>;
};

export type MemberGrantSource = 'manual' | 'oidc';

/** Migration 0007: a sign-up awaiting its mailed verification token. */
export type PendingSignUpsTable = {
  id: Generated<string>;
  email: string;
  name: string;
  password_hash: string;
  token_hash: string | null;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: Generated<Date>;
};

export type IdentityTables = {
  user_sessions: UserSessionsTable;
  auth_denials: AuthDenialsTable;
  sign_in_failures: SignInFailuresTable;
  api_tokens: ApiTokensTable;
  user_identities: UserIdentitiesTable;
  project_group_roles: ProjectGroupRolesTable;
  pending_sign_ups: PendingSignUpsTable;
  project_members: {
    granted_by: ColumnType<MemberGrantSource, MemberGrantSource | undefined, MemberGrantSource>;
  };
};

export type IdentitySchema = Schema & IdentityTables;
export type IdentityDb = Kysely<IdentitySchema>;
export type IdentityTrx = Transaction<IdentitySchema>;

export type UserSessionRow = Selectable<UserSessionsTable>;
export type ApiTokenRow = Selectable<ApiTokensTable>;

export function identityDb(db: Db): IdentityDb {
  return db.withTables<IdentityTables>();
}
