/**
 * The error catalogue. Every error a client can see has a stable code from this list, and
 * each code maps to exactly one HTTP status. Codes are never renamed or reused.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: { status: 400, meaning: 'the request does not match its schema' },
  INVALID_JSON: { status: 400, meaning: 'the body is not valid JSON' },
  MALFORMED_REQUEST: { status: 400, meaning: 'the request is not valid HTTP/1.1' },
  INVALID_CURSOR: { status: 400, meaning: 'the pagination cursor is malformed' },
  INVALID_NAME: { status: 400, meaning: 'a name is not a valid RFC 1123 label' },
  INVALID_FILTER: { status: 400, meaning: 'a query filter is not one the route accepts' },
  ENV_VAR_INVALID: { status: 400, meaning: 'a configuration variable name or file is malformed' },
  SECRET_VALUE_INVALID: { status: 400, meaning: 'a secret name or value is malformed' },
  MEMBER_EXPIRY_INVALID: { status: 400, meaning: "a grant's expiry is not in the future" },
  GIT_URL_REJECTED: { status: 400, meaning: 'a git URL breaks the git URL policy' },
  GIT_LOCAL_PATH_REJECTED: {
    status: 400,
    meaning:
      'a local git repository is inside the data folder, or outside the allowed roots for a non-admin',
  },
  OUTBOUND_URL_REJECTED: { status: 400, meaning: 'an outbound URL breaks the outbound policy' },
  SIGN_UP_TOKEN_INVALID: {
    status: 400,
    meaning: 'a sign-up verification token is unknown, already used or expired',
  },
  AUTHENTICATION_REQUIRED: { status: 401, meaning: 'no credentials were given' },
  AUTHENTICATION_FAILED: { status: 401, meaning: 'the credentials are wrong, expired or revoked' },
  OIDC_SIGN_IN_FAILED: {
    status: 401,
    meaning: 'the identity provider refused or could not complete a sign-in',
  },
  FORBIDDEN: { status: 403, meaning: 'the caller lacks the role this action needs' },
  CSRF_TOKEN_INVALID: { status: 403, meaning: 'a cookie-session request lacks its CSRF token' },
  SIGN_UP_CLOSED: { status: 403, meaning: 'sign-up is closed; an instance admin creates users' },
  NOT_FOUND: { status: 404, meaning: 'the route does not exist' },
  PROJECT_NOT_FOUND: { status: 404, meaning: 'no project with that id or slug is visible' },
  ENVIRONMENT_NOT_FOUND: { status: 404, meaning: 'no environment with that id or name' },
  SERVICE_NOT_FOUND: { status: 404, meaning: 'no service with that id is visible' },
  BUILD_NOT_FOUND: { status: 404, meaning: 'no build with that id is visible' },
  RELEASE_NOT_FOUND: { status: 404, meaning: 'no release with that id is visible' },
  DEPLOYMENT_NOT_FOUND: { status: 404, meaning: 'no deployment with that id is visible' },
  MEMBER_NOT_FOUND: { status: 404, meaning: 'the user is not a member of the project' },
  USER_NOT_FOUND: { status: 404, meaning: 'no user with that id or email' },
  INVITATION_NOT_FOUND: { status: 404, meaning: 'no pending invitation with that id' },
  SESSION_NOT_FOUND: { status: 404, meaning: 'no live session of the caller with that id' },
  API_TOKEN_NOT_FOUND: { status: 404, meaning: 'no API token of the caller with that id' },
  OIDC_NOT_CONFIGURED: { status: 404, meaning: 'single sign-on is not configured' },
  SECRET_NOT_FOUND: { status: 404, meaning: 'no secret of that name in that scope' },
  SECRET_VERSION_NOT_FOUND: {
    status: 404,
    meaning: 'the secret has no readable version of that number',
  },
  ROTATION_NOT_FOUND: { status: 404, meaning: 'no secret rotation with that id is visible' },
  AUDIT_SINK_NOT_FOUND: { status: 404, meaning: 'no audit sink with that id' },
  METHOD_NOT_ALLOWED: { status: 405, meaning: 'the route exists but not for this method' },
  ACCOUNT_EXISTS: { status: 409, meaning: 'an account with that email exists' },
  PROJECT_SLUG_TAKEN: { status: 409, meaning: 'another project uses that slug' },
  ENVIRONMENT_NAME_TAKEN: { status: 409, meaning: 'the project has an environment of that name' },
  SERVICE_NAME_TAKEN: { status: 409, meaning: 'the project has a service of that name' },
  AUDIT_SINK_NAME_TAKEN: { status: 409, meaning: 'another audit sink has that name' },
  MEMBER_EXISTS: { status: 409, meaning: 'the user is already a member' },
  MEMBER_LAST_OWNER: { status: 409, meaning: 'the last owner cannot be removed or demoted' },
  USER_LAST_ADMIN: { status: 409, meaning: 'the last active instance admin cannot be disabled' },
  IDEMPOTENCY_KEY_REUSED: { status: 409, meaning: 'the key was used with a different request' },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, meaning: 'the first request with this key runs' },
  ENVIRONMENT_PROTECTED: { status: 409, meaning: 'the environment has live deployments' },
  SECRET_VERSION_CURRENT: {
    status: 409,
    meaning: 'the current version of a secret cannot be destroyed',
  },
  SECRET_ROTATION_RUNNING: {
    status: 409,
    meaning: 'the secret is being rotated; wait for it to finish',
  },
  SECRET_CONFLICT: {
    status: 409,
    meaning: 'the secret store changed underneath the write (check-and-set)',
  },
  PRECONDITION_FAILED: { status: 412, meaning: 'a precondition header did not match' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'the body exceeds the size limit' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'the content type is not accepted' },
  RELEASE_UNAVAILABLE: { status: 422, meaning: 'there is no release to deploy' },
  ROLLBACK_TARGET_INVALID: { status: 422, meaning: 'there is no earlier release to roll back to' },
  RATE_LIMITED: { status: 429, meaning: 'too many requests; retry after the given time' },
  HEADERS_TOO_LARGE: { status: 431, meaning: 'the request headers exceed the size limit' },
  DEPENDENCY_UNAVAILABLE: { status: 503, meaning: 'a database or other dependency is down' },
  SHUTTING_DOWN: {
    status: 503,
    meaning: 'this process is shutting down; retry, another replica will answer',
  },
  SECRET_STORE_UNAVAILABLE: {
    status: 503,
    meaning: 'the secret store (Vault) cannot be reached or refused',
  },
  INTERNAL: { status: 500, meaning: 'an unexpected failure; the request id locates it' },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AppErrorOptions {
  details?: unknown;
  cause?: unknown;
  headers?: Record<string, string>;
}

/** An error a client may see: a stable code, a safe message, optional details. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = options.details;
    this.headers = options.headers;
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}
