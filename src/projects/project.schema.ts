import { Type, type Static } from '@sinclair/typebox';
import { LABEL_PATTERN, Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { EnvironmentRow, InvitationRow, ProjectRow, Role } from '../platform/db/schema.js';

const Label = (description: string) =>
  Type.String({ minLength: 1, maxLength: 63, pattern: LABEL_PATTERN, description });

export const RoleSchema = Type.Union([
  Type.Literal('owner'),
  Type.Literal('admin'),
  Type.Literal('developer'),
  Type.Literal('readonly'),
]);

export const Project = Type.Object({
  id: Uuid,
  slug: Type.String(),
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('archived')]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const CreateProjectBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    slug: Type.Optional(Label('lowercase letters, digits and hyphens; becomes part of hostnames')),
  },
  { additionalProperties: false },
);
export type CreateProjectBody = Static<typeof CreateProjectBody>;

export const UpdateProjectBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    archived: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateProjectBody = Static<typeof UpdateProjectBody>;

export const Environment = Type.Object({
  id: Uuid,
  projectId: Uuid,
  name: Type.String(),
  kind: Type.Union([Type.Literal('standard'), Type.Literal('preview')]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const CreateEnvironmentBody = Type.Object(
  { name: Label('an RFC 1123 label, e.g. "qa" or "preview-42"') },
  { additionalProperties: false },
);
export const UpdateEnvironmentBody = CreateEnvironmentBody;
export const EnvironmentParams = Type.Object(
  {
    project: Type.String({ minLength: 1, maxLength: 63 }),
    env: Type.String({ minLength: 1, maxLength: 63 }),
  },
  { additionalProperties: false },
);

export const Member = Type.Object({
  userId: Uuid,
  email: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  environmentId: Nullable(Uuid),
  expiresAt: Nullable(Timestamp),
  createdAt: Timestamp,
});

/**
 * The answer to adding a member: the same whether the address had an account (it is a member
 * now) or not (it is invited until its account is created), so the answer reveals neither.
 */
export const MemberAdded = Type.Object({
  status: Type.Literal('accepted'),
  email: Type.String(),
  role: RoleSchema,
  environmentId: Nullable(Uuid),
  expiresAt: Nullable(Timestamp),
  message: Type.String(),
});

/** A grant waiting for an account with its email address; listed for Admins and Owners. */
export const Invitation = Type.Object({
  id: Uuid,
  email: Type.String(),
  role: RoleSchema,
  environmentId: Nullable(Uuid),
  expiresAt: Nullable(Timestamp),
  inviteExpiresAt: Timestamp,
  createdAt: Timestamp,
});

export const InvitationParams = Type.Object(
  { project: Type.String({ minLength: 1, maxLength: 63 }), invitationId: Uuid },
  { additionalProperties: false },
);

export const AddMemberBody = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    role: RoleSchema,
    environment: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    expiresAt: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);
export type AddMemberBody = Static<typeof AddMemberBody>;

export const UpdateMemberBody = Type.Object(
  {
    role: RoleSchema,
    environment: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 63 }))),
    expiresAt: Type.Optional(Nullable(Timestamp)),
  },
  { additionalProperties: false },
);
export type UpdateMemberBody = Static<typeof UpdateMemberBody>;

export const MemberParams = Type.Object(
  { project: Type.String({ minLength: 1, maxLength: 63 }), userId: Uuid },
  { additionalProperties: false },
);

export function toProjectResponse(row: ProjectRow): Static<typeof Project> {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    status: row.status,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export function toEnvironmentResponse(row: EnvironmentRow): Static<typeof Environment> {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    kind: row.kind,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export function toMemberResponse(row: {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  environment_id: string | null;
  expires_at: Date | null;
  created_at: Date;
}): Static<typeof Member> {
  return {
    userId: row.user_id,
    email: row.email,
    name: row.name,
    role: row.role,
    environmentId: row.environment_id,
    expiresAt: row.expires_at === null ? null : row.expires_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

const MEMBER_ADDED_MESSAGE =
  'The address is a member now if it has an account; otherwise it is invited and becomes a member when its account is created.';

export function toMemberAddedResponse(
  email: string,
  grant: { role: Role; environmentId: string | null; expiresAt: Date | null },
): Static<typeof MemberAdded> {
  return {
    status: 'accepted',
    email,
    role: grant.role,
    environmentId: grant.environmentId,
    expiresAt: grant.expiresAt === null ? null : grant.expiresAt.toISOString(),
    message: MEMBER_ADDED_MESSAGE,
  };
}

export function toInvitationResponse(row: InvitationRow): Static<typeof Invitation> {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    environmentId: row.environment_id,
    expiresAt: row.expires_at === null ? null : row.expires_at.toISOString(),
    inviteExpiresAt: row.invite_expires_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}
