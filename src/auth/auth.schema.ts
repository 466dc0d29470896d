import { Type } from '@sinclair/typebox';
import { Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';
import type { PasswordPolicy } from './auth.config.js';

export const TokenPair = Type.Object({
  accessToken: Type.String(),
  refreshToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
});

export const BrowserSessionSchema = Type.Object({
  csrfToken: Type.String({
    description: 'Send it back in X-CSRF-Token on every request that changes state',
  }),
  expiresIn: Type.Integer(),
  refreshExpiresIn: Type.Integer(),
});

export const User = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  isInstanceAdmin: Type.Boolean(),
  createdAt: Timestamp,
});

export const SignUpAcceptedSchema = Type.Object({
  status: Type.Literal('accepted'),
  next: Type.Union([Type.Literal('sign_in'), Type.Literal('verify_email')], {
    description:
      'sign_in: the account (if the address was free) is ready; verify_email: a token was mailed',
  }),
  message: Type.String(),
});

export const VerifySignUpBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }) },
  { additionalProperties: false },
);

export const AdminUser = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  isInstanceAdmin: Type.Boolean(),
  disabled: Type.Boolean(),
  createdAt: Timestamp,
});

export const SessionSchema = Type.Object({
  id: Uuid,
  method: Type.Union([Type.Literal('password'), Type.Literal('oidc')]),
  transport: Type.Union([Type.Literal('bearer'), Type.Literal('cookie')]),
  userAgent: Nullable(Type.String()),
  clientIp: Nullable(Type.String()),
  createdAt: Timestamp,
  lastUsedAt: Timestamp,
  expiresAt: Timestamp,
  isCurrent: Type.Boolean(),
});

export const ScopeSchema = Type.Union([
  Type.Literal('read'),
  Type.Literal('deploy'),
  Type.Literal('write'),
  Type.Literal('secrets'),
  Type.Literal('admin'),
]);

export const ApiTokenSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  prefix: Type.String({ description: 'The first characters of the token, to recognise it' }),
  scopes: Type.Array(ScopeSchema),
  projectId: Nullable(Uuid),
  expiresAt: Timestamp,
  lastUsedAt: Nullable(Timestamp),
  createdAt: Timestamp,
});

export const CreatedApiToken = Type.Object({
  ...ApiTokenSchema.properties,
  token: Type.String({ description: 'The secret; shown in this answer only' }),
});

export const CreateApiTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, maxItems: 5, uniqueItems: true }),
    project: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 63,
        description: 'Restrict the token to this project (id or slug)',
      }),
    ),
    expiresAt: Type.String({ format: 'date-time', description: 'Required: every token expires' }),
  },
  { additionalProperties: false },
);

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 });

/** Schemas that depend on the configured password policy. */
/** A person's display name: no control characters, no bidirectional overrides. */
const PersonName = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[^\\p{Cc}\\u202A-\\u202E\\u2066-\\u2069]+$',
});

export function passwordSchemas(policy: PasswordPolicy) {
  // A lone UTF-16 surrogate has no UTF-8 form: hashing would turn every one into U+FFFD, so
  // two different passwords would match. Refused when a password is set.
  const NewPassword = Type.String({
    minLength: policy.minLength,
    maxLength: policy.maxLength,
    pattern: '^\\P{Cs}*$',
  });
  // Sign-in accepts any length up to the maximum, so a shortened policy still lets people in.
  const AnyPassword = Type.String({ minLength: 1, maxLength: policy.maxLength });
  return {
    RegisterBody: Type.Object(
      { email: Email, password: NewPassword, name: PersonName },
      { additionalProperties: false },
    ),
    LoginBody: Type.Object(
      { email: Email, password: AnyPassword },
      { additionalProperties: false },
    ),
    ChangePasswordBody: Type.Object(
      { currentPassword: AnyPassword, newPassword: NewPassword },
      { additionalProperties: false },
    ),
    CreateUserBody: Type.Object(
      { email: Email, password: NewPassword, name: PersonName },
      { additionalProperties: false },
    ),
    UpdateUserBody: Type.Object(
      { disabled: Type.Optional(Type.Boolean()), password: Type.Optional(NewPassword) },
      { additionalProperties: false, minProperties: 1 },
    ),
  };
}
