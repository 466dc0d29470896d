/**
 * The one typed client the CLI uses to call the Switchyard API. Response types come from
 * the route schemas themselves, so the CLI and the server cannot drift apart silently.
 */
import { randomUUID } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import type { User } from '../auth/auth.routes.js';
import type { SignUpAcceptedSchema } from '../auth/auth.schema.js';
import type { Project, Environment } from '../projects/project.schema.js';
import type { ServiceSchema, Variables } from '../services/service.schema.js';
import type { BuildLogs, BuildSchema } from '../builds/build.schema.js';
import type { ReleaseSchema } from '../releases/release.schema.js';
import type {
  DeploymentLogs,
  DeploymentSchema,
  ServiceStatus,
} from '../deployments/deployment.schema.js';
import type { Accepted } from '../platform/http/schemas.js';
import type { VerifyResult } from '../audit/audit.schema.js';
import type { Page } from '../platform/http/pagination.js';
import type {
  RotationSchema,
  SecretSchema,
  SecretValue,
  SecretVersions,
} from '../secrets/secret.schema.js';

export type UserResponse = Static<typeof User>;
export type SignUpAcceptedResponse = Static<typeof SignUpAcceptedSchema>;
export type ProjectResponse = Static<typeof Project>;
export type EnvironmentResponse = Static<typeof Environment>;
export type ServiceResponse = Static<typeof ServiceSchema>;
export type VariablesResponse = Static<typeof Variables>;
export type BuildResponse = Static<typeof BuildSchema>;
export type BuildLogsResponse = Static<typeof BuildLogs>;
export type ReleaseResponse = Static<typeof ReleaseSchema>;
export type DeploymentResponse = Static<typeof DeploymentSchema>;
export type DeploymentLogsResponse = Static<typeof DeploymentLogs>;
export type ServiceStatusResponse = Static<typeof ServiceStatus>;
export type AcceptedResponse = Static<typeof Accepted>;
export type AuditVerifyResponse = Static<typeof VerifyResult>;
export type SecretResponse = Static<typeof SecretSchema>;
export type SecretValueResponse = Static<typeof SecretValue>;
export type SecretVersionsResponse = Static<typeof SecretVersions>;
export type RotationResponse = Static<typeof RotationSchema>;

/** Where a secret lives: a project, one of its environments, or a service (by id). */
export type SecretScopeRef = { project: string; environment?: string } | { serviceId: string };
export type { Page };

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

export interface CreateServiceInput {
  name: string;
  gitUrl: string;
  branch?: string;
  runtime?: { healthCheckPath?: string; instances?: number };
}

export interface PageQuery {
  limit?: number;
  cursor?: string;
}

/** Where the bearer token comes from, and how to get a fresh one after a 401. */
export interface TokenSource {
  token(): Promise<string | undefined>;
  /** Obtains a new access token; false when that is impossible (sign in again). */
  renew?(): Promise<boolean>;
}

/** The API answered with its error envelope. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly requestId: string | undefined,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The API could not be reached at all (refused, reset, timed out, bad address). */
export class ApiUnreachableError extends Error {
  constructor(
    readonly baseUrl: string,
    options: { cause: unknown },
  ) {
    super(`cannot reach the API at ${baseUrl}: ${describeCause(options.cause)}`, options);
    this.name = 'ApiUnreachableError';
  }
}

export interface ServerSentEvent {
  event: string;
  id: string | undefined;
  data: unknown;
}

interface RequestOptions {
  json?: unknown;
  text?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Requests that start work send a key, so a retry after a token refresh is safe. */
  idempotencyKey?: string;
  signal?: AbortSignal | undefined;
}

const REQUEST_TIMEOUT_MS = 30_000;
const USER_AGENT = 'switchyard-cli/0.1';

export class ApiClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly auth?: TokenSource,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  register = (input: { email: string; password: string; name: string }) =>
    this.call<SignUpAcceptedResponse>('POST', '/v1/auth/register', { json: input });
  verify = (token: string) =>
    this.call<UserResponse>('POST', '/v1/auth/verify', { json: { token } });
  login = (input: { email: string; password: string }) =>
    this.call<TokenPair>('POST', '/v1/auth/login', { json: input });
  refresh = (refreshToken: string) =>
    this.call<TokenPair>('POST', '/v1/auth/refresh', { json: { refreshToken } });
  logout = () => this.call<void>('POST', '/v1/auth/logout');
  me = () => this.call<UserResponse>('GET', '/v1/me');

  createProject = (input: { name: string; slug?: string }) =>
    this.call<ProjectResponse>('POST', '/v1/projects', { json: input });
  listProjects = (page: PageQuery = {}) =>
    this.call<Page<ProjectResponse>>('GET', '/v1/projects', { query: { ...page } });
  getProject = (project: string) =>
    this.call<ProjectResponse>('GET', `/v1/projects/${segment(project)}`);
  listEnvironments = (project: string, page: PageQuery = {}) =>
    this.call<Page<EnvironmentResponse>>('GET', `/v1/projects/${segment(project)}/environments`, {
      query: { ...page },
    });

  createService = (project: string, input: CreateServiceInput) =>
    this.call<ServiceResponse>('POST', `/v1/projects/${segment(project)}/services`, {
      json: input,
    });
  listServices = (project: string, page: PageQuery = {}) =>
    this.call<Page<ServiceResponse>>('GET', `/v1/projects/${segment(project)}/services`, {
      query: { ...page },
    });
  getService = (id: string) => this.call<ServiceResponse>('GET', `/v1/services/${segment(id)}`);

  getVariables = (serviceId: string) =>
    this.call<VariablesResponse>('GET', `/v1/services/${segment(serviceId)}/env`);
  importVariables = (serviceId: string, dotenv: string) =>
    this.call<VariablesResponse>('POST', `/v1/services/${segment(serviceId)}/env/import`, {
      text: dotenv,
    });

  createBuild = (serviceId: string, input: { ref?: string }) =>
    this.call<AcceptedResponse>('POST', `/v1/services/${segment(serviceId)}/builds`, {
      json: input,
      idempotencyKey: randomUUID(),
    });
  listBuilds = (serviceId: string, page: PageQuery = {}) =>
    this.call<Page<BuildResponse>>('GET', `/v1/services/${segment(serviceId)}/builds`, {
      query: { ...page },
    });
  getBuild = (id: string) => this.call<BuildResponse>('GET', `/v1/builds/${segment(id)}`);
  buildLogs = (id: string) => this.call<BuildLogsResponse>('GET', `/v1/builds/${segment(id)}/logs`);
  followBuildLogs = (id: string, signal?: AbortSignal) =>
    this.events(`/v1/builds/${segment(id)}/logs?follow=true`, signal);

  listReleases = (serviceId: string, page: PageQuery = {}) =>
    this.call<Page<ReleaseResponse>>('GET', `/v1/services/${segment(serviceId)}/releases`, {
      query: { ...page },
    });

  createDeployment = (
    serviceId: string,
    input: { environment: string; releaseId?: string; replicas?: number },
  ) =>
    this.call<AcceptedResponse>('POST', `/v1/services/${segment(serviceId)}/deployments`, {
      json: input,
      idempotencyKey: randomUUID(),
    });
  rollback = (serviceId: string, input: { environment: string; releaseId?: string }) =>
    this.call<AcceptedResponse>('POST', `/v1/services/${segment(serviceId)}/rollback`, {
      json: input,
      idempotencyKey: randomUUID(),
    });
  getDeployment = (id: string) =>
    this.call<DeploymentResponse>('GET', `/v1/deployments/${segment(id)}`);
  serviceStatus = (serviceId: string, environment: string) =>
    this.call<ServiceStatusResponse>('GET', `/v1/services/${segment(serviceId)}/status`, {
      query: { environment },
    });
  deploymentLogs = (id: string, tail?: number) =>
    this.call<DeploymentLogsResponse>('GET', `/v1/deployments/${segment(id)}/logs`, {
      query: { tail },
    });
  verifyAuditChain = () => this.call<AuditVerifyResponse>('GET', '/v1/audit-events/verify');

  followDeploymentLogs = (id: string, tail?: number, signal?: AbortSignal) => {
    const query = new URLSearchParams({ follow: 'true' });
    if (tail !== undefined) query.set('tail', String(tail));
    return this.events(`/v1/deployments/${segment(id)}/logs?${query.toString()}`, signal);
  };

  listSecrets = (scope: SecretScopeRef, page: PageQuery = {}) =>
    this.call<Page<SecretResponse>>('GET', secretsPath(scope), { query: { ...page } });
  /** Writes a new version; the value travels as base64 so any bytes survive. */
  putSecret = (scope: SecretScopeRef, name: string, value: Buffer) =>
    this.call<SecretResponse>('PUT', `${secretsPath(scope)}/${segment(name)}`, {
      json: { valueBase64: value.toString('base64') },
    });
  readSecret = (scope: SecretScopeRef, name: string, version?: number) =>
    this.call<SecretValueResponse>('GET', `${secretsPath(scope)}/${segment(name)}/value`, {
      query: { version },
    });
  secretVersions = (scope: SecretScopeRef, name: string) =>
    this.call<SecretVersionsResponse>('GET', `${secretsPath(scope)}/${segment(name)}/versions`);
  restoreSecret = (scope: SecretScopeRef, name: string, version: number) =>
    this.call<SecretResponse>('POST', `${secretsPath(scope)}/${segment(name)}/restore`, {
      json: { version },
    });
  rotateSecret = (
    scope: SecretScopeRef,
    name: string,
    input: { valueBase64?: string; generateBytes?: number },
  ) =>
    this.call<AcceptedResponse>('POST', `${secretsPath(scope)}/${segment(name)}/rotate`, {
      json: input,
      idempotencyKey: randomUUID(),
    });
  getRotation = (id: string) =>
    this.call<RotationResponse>('GET', `/v1/secret-rotations/${segment(id)}`);

  /** One JSON request; throws ApiError for any non-2xx answer. */
  async call<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const signal = anySignal(options.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS));
    const response = await this.send(method, path, { ...options, signal });
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /**
   * Reads a `text/event-stream` until the server ends it or `signal` aborts. No request
   * timeout applies: a followed log may stay open for as long as the caller wants.
   */
  async *events(path: string, signal?: AbortSignal): AsyncGenerator<ServerSentEvent> {
    let response: Response;
    try {
      response = await this.send('GET', path, { signal });
    } catch (error) {
      if (signal?.aborted === true) return;
      throw error;
    }
    if (response.body === null) return;
    const text = response.body.pipeThrough(new TextDecoderStream());
    try {
      yield* parseEventStream(text);
    } catch (error) {
      if (signal?.aborted === true) return;
      throw new ApiUnreachableError(this.baseUrl, { cause: error });
    }
  }

  private async send(
    method: string,
    path: string,
    options: RequestOptions,
    isRetry = false,
  ): Promise<Response> {
    const headers = await this.headersFor(options);
    const url = withQuery(`${this.baseUrl}${path}`, options.query);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: bodyOf(options),
        signal: options.signal,
      });
    } catch (error) {
      throw new ApiUnreachableError(this.baseUrl, { cause: error });
    }
    if (response.ok) return response;

    const error = await toApiError(response);
    const mayRenew = error.code === 'AUTHENTICATION_FAILED' && !isRetry && this.auth?.renew;
    if (mayRenew && (await this.auth?.renew?.()) === true) {
      return this.send(method, path, options, true);
    }
    throw error;
  }

  private async headersFor(options: RequestOptions): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': USER_AGENT,
    };
    const token = await this.auth?.token();
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    if (options.text !== undefined) headers['content-type'] = 'text/plain; charset=utf-8';
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    return headers;
  }
}

/** Parses server-sent events from decoded text chunks; `data` is JSON when it parses. */
export async function* parseEventStream(
  chunks: AsyncIterable<string>,
): AsyncGenerator<ServerSentEvent> {
  let buffer = '';
  let event = 'message';
  let id: string | undefined;
  let data: string[] = [];

  for await (const chunk of chunks) {
    buffer += chunk;
    let newline = buffer.search(/\r\n|\r|\n/);
    while (newline !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      newline = buffer.search(/\r\n|\r|\n/);

      if (line === '') {
        if (data.length > 0) yield { event, id, data: decodeData(data.join('\n')) };
        event = 'message';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
  }
}

function decodeData(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

async function toApiError(response: Response): Promise<ApiError> {
  const requestId = response.headers.get('x-request-id') ?? undefined;
  const text = await response.text().catch(() => '');
  const envelope = parseEnvelope(text);
  if (envelope === undefined) {
    const message = `the API answered ${response.status} ${response.statusText}`.trim();
    return new ApiError(`HTTP_${response.status}`, message, response.status, requestId);
  }
  return new ApiError(
    envelope.code,
    envelope.message,
    response.status,
    envelope.requestId ?? requestId,
    envelope.details,
  );
}

interface Envelope {
  code: string;
  message: string;
  requestId?: string;
  details?: unknown;
}

function parseEnvelope(text: string): Envelope | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || !('error' in parsed)) return undefined;
  const error: unknown = parsed.error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message, requestId, details } = error as Record<string, unknown>;
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  return { code, message, details, ...(typeof requestId === 'string' ? { requestId } : {}) };
}

function bodyOf(options: RequestOptions): string | undefined {
  if (options.text !== undefined) return options.text;
  return options.json === undefined ? undefined : JSON.stringify(options.json);
}

function withQuery(url: string, query: RequestOptions['query']): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.set(name, String(value));
  }
  const search = params.toString();
  return search === '' ? url : `${url}?${search}`;
}

function secretsPath(scope: SecretScopeRef): string {
  if ('serviceId' in scope) return `/v1/services/${segment(scope.serviceId)}/secrets`;
  const project = `/v1/projects/${segment(scope.project)}`;
  return scope.environment === undefined
    ? `${project}/secrets`
    : `${project}/environments/${segment(scope.environment)}/secrets`;
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((signal) => signal !== undefined));
}

function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  if (cause.name === 'TimeoutError') return 'timed out';
  const inner = cause.cause;
  if (!(inner instanceof Error)) return cause.message;
  return 'code' in inner && typeof inner.code === 'string' ? inner.code : inner.message;
}
