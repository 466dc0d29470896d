import { createHash, randomUUID } from 'node:crypto';
import type { ActorRole, ActorType, AuditEventRow, Outcome } from './audit.tables.js';

/** Who acted. A token acts for its owner: both are named. */
export interface Actor {
  type: ActorType;
  /** The user (for a token, its owner); null for anonymous callers and the system. */
  id: string | null;
  tokenId: string | null;
  /** Their role where they acted, at the time: a project role, or instance_admin. */
  role: ActorRole | null;
}

/** A field that changed: `from` and `to`, with secret values already replaced by the marker. */
export type FieldDiff = Record<string, { from: unknown; to: unknown }>;

/** What a caller says about an event; the recorder adds the request's facts and the id. */
export interface AuditEventInput {
  action: string;
  outcome?: Outcome;
  resource?: { type: string; id?: string | null; name?: string | null };
  projectId?: string | null;
  environmentId?: string | null;
  /** Defaults to the actor of the current request (or job). */
  actor?: Actor;
  /** Overrides the role of the actor, e.g. the grant a service just checked. */
  actorRole?: ActorRole | null;
  diff?: FieldDiff | null;
  details?: Record<string, unknown> | null;
}

/** Where the event happened: the request's facts, when there is a request. */
export interface RequestFacts {
  requestId: string | null;
  clientIp: string | null;
  userAgent: string | null;
}

/** A complete event: what is inserted, what is spooled, and what the content hash covers. */
export interface AuditRecord {
  id: string;
  /** ISO-8601 UTC with milliseconds. */
  occurredAt: string;
  actorType: ActorType;
  actorId: string | null;
  actorTokenId: string | null;
  actorRole: ActorRole | null;
  action: string;
  resourceType: string | null;
  resourceId: string | null;
  resourceName: string | null;
  projectId: string | null;
  environmentId: string | null;
  clientIp: string | null;
  userAgent: string | null;
  requestId: string | null;
  outcome: Outcome;
  diff: FieldDiff | null;
  details: Record<string, unknown> | null;
  contentHash: string;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: null, tokenId: null, role: null };
export const ANONYMOUS_ACTOR: Actor = { type: 'anonymous', id: null, tokenId: null, role: null };

/** What replaces a secret value in a diff or in details. */
export const REDACTED = '[REDACTED]';

// Field names whose values are credentials whatever the resource: never stored in an event.
// Compared without case, `-` or `_`, so API_TOKEN and apiToken match but apiTokenId does not.
const SECRET_FIELD =
  /(secret|password|passwd|credential|privatekey|apikey|token$|^value$|^values$)/;

const LIMITS = {
  action: 200,
  resourceType: 100,
  resourceId: 200,
  resourceName: 300,
  clientIp: 64,
  userAgent: 512,
  requestId: 128,
};
const MAX_JSON_CHARS = 32_768;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HASH_VERSION = 'switchyard-audit-v1\n';

/**
 * Text PostgreSQL can store: no NUL, no lone surrogate, at most `max` characters. Events carry
 * what clients sent (user agents, names); an unstorable one must not lose the event.
 */
export function storableText(value: string, max: number): string {
  const cleaned = value
    .replace(/\u0000/g, '\uFFFD')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return cleaned.length <= max ? cleaned : cleaned.slice(0, max);
}

function optionalText(value: string | null | undefined, max: number): string | null {
  return value === undefined || value === null ? null : storableText(value, max);
}

function optionalUuid(value: string | null | undefined): string | null {
  return value !== undefined && value !== null && UUID.test(value) ? value.toLowerCase() : null;
}

/** JSON PostgreSQL's jsonb stores and gives back unchanged (up to key order). */
export function storableJson(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'string') return storableText(value, MAX_JSON_CHARS);
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (depth > 8) return '[too deep]';
  if (Array.isArray(value)) return value.map((item) => storableJson(item, depth + 1));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined || typeof item === 'function') continue;
      out[storableText(key, 200)] = storableJson(item, depth + 1);
    }
    return out;
  }
  return null;
}

function boundedObject<T extends Record<string, unknown>>(value: T | null | undefined): T | null {
  if (value === undefined || value === null) return null;
  const json = storableJson(value) as T;
  return JSON.stringify(json).length <= MAX_JSON_CHARS
    ? json
    : ({ truncated: true } as unknown as T);
}

/** JSON with object keys sorted at every level: the same content always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The hash of everything an event says (all but the hash itself and its chain position). */
export function contentHashOf(record: Omit<AuditRecord, 'contentHash'>): string {
  const {
    id,
    occurredAt,
    actorType,
    actorId,
    actorTokenId,
    actorRole,
    action,
    resourceType,
    resourceId,
    resourceName,
  } = record;
  const { projectId, environmentId, clientIp, userAgent, requestId, outcome, diff, details } =
    record;
  const content = {
    id,
    occurredAt,
    actorType,
    actorId,
    actorTokenId,
    actorRole,
    action,
    resourceType,
    resourceId,
    resourceName,
    projectId,
    environmentId,
    clientIp,
    userAgent,
    requestId,
    outcome,
    diff,
    details,
  };
  return sha256Hex(HASH_VERSION + canonicalJson(content));
}

/** The chain link: SHA-256 over the previous event's hash and this event's content hash. */
export function chainHash(prevHash: string, contentHash: string): string {
  return sha256Hex(prevHash + contentHash);
}

export const GENESIS_HASH = '0'.repeat(64);

/** Builds the stored form of an event: bounded, storable, hashed. */
export function buildRecord(
  input: AuditEventInput,
  context: { actor: Actor; facts: RequestFacts; id?: string; now?: Date },
): AuditRecord {
  const actor = input.actor ?? context.actor;
  const role = input.actorRole === undefined ? actor.role : input.actorRole;
  const base: Omit<AuditRecord, 'contentHash'> = {
    id: context.id ?? randomUUID(),
    occurredAt: (context.now ?? new Date()).toISOString(),
    actorType: actor.type,
    actorId: optionalUuid(actor.id),
    actorTokenId: optionalUuid(actor.tokenId),
    actorRole: role,
    action: storableText(input.action, LIMITS.action),
    resourceType: optionalText(input.resource?.type, LIMITS.resourceType),
    resourceId: optionalText(input.resource?.id, LIMITS.resourceId),
    resourceName: optionalText(input.resource?.name, LIMITS.resourceName),
    projectId: optionalUuid(input.projectId),
    environmentId: optionalUuid(input.environmentId),
    clientIp: optionalText(context.facts.clientIp, LIMITS.clientIp),
    userAgent: optionalText(context.facts.userAgent, LIMITS.userAgent),
    requestId: optionalText(context.facts.requestId, LIMITS.requestId),
    outcome: input.outcome ?? 'success',
    diff: boundedObject(input.diff),
    details: boundedObject(redactDetails(input.details)),
  };
  return { ...base, contentHash: contentHashOf(base) };
}

/** Reads a stored row back into the record whose content hash it must match. */
export function recordFromRow(row: AuditEventRow): AuditRecord {
  return {
    id: row.id,
    occurredAt: row.occurred_at.toISOString(),
    actorType: row.actor_type,
    actorId: row.actor_id,
    actorTokenId: row.actor_token_id,
    actorRole: row.actor_role,
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    resourceName: row.resource_name,
    projectId: row.project_id,
    environmentId: row.environment_id,
    clientIp: row.client_ip,
    userAgent: row.user_agent,
    requestId: row.request_id,
    outcome: row.outcome,
    diff: (row.diff ?? null) as FieldDiff | null,
    details: (row.details ?? null) as Record<string, unknown> | null,
    contentHash: row.content_hash,
  };
}

export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name.toLowerCase().replace(/[-_]/g, ''));
}

/** The same value with every value under a credential-like key replaced by the marker. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object' || value instanceof Date)
    return value;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] =
      isSecretField(key) && item !== null && item !== undefined
        ? REDACTED
        : redactDeep(item, depth + 1);
  }
  return out;
}

function redactDetails(
  details: Record<string, unknown> | null | undefined,
): Record<string, unknown> | null {
  if (details === undefined || details === null) return null;
  return redactDeep(details) as Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

function flatten(value: Record<string, unknown>, prefix: string, out: Map<string, unknown>): void {
  for (const [key, item] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    // An empty object holds no field: `{}` and absent read the same.
    if (isPlainObject(item)) flatten(item, path, out);
    else if (item !== undefined) out.set(path, item);
  }
}

/**
 * The fields that differ between two versions of a resource, nested objects flattened to
 * dotted paths. Values of fields named like credentials, and of the fields listed in
 * `secretFields` (or under them), become the marker on both sides: the diff says that a
 * secret changed, never what it was or became.
 */
export function diffFields(
  before: Record<string, unknown> | null | undefined,
  after: Record<string, unknown> | null | undefined,
  options: { secretFields?: readonly string[]; ignore?: readonly string[] } = {},
): FieldDiff {
  const old = new Map<string, unknown>();
  const next = new Map<string, unknown>();
  flatten(before ?? {}, '', old);
  flatten(after ?? {}, '', next);
  const secret = (path: string) =>
    path.split('.').some(isSecretField) ||
    (options.secretFields ?? []).some((field) => path === field || path.startsWith(`${field}.`));
  const ignored = (path: string) =>
    (options.ignore ?? []).some((field) => path === field || path.startsWith(`${field}.`));

  const diff: FieldDiff = {};
  for (const path of [...new Set([...old.keys(), ...next.keys()])].sort()) {
    if (ignored(path)) continue;
    const from = old.has(path) ? storableJson(old.get(path)) : null;
    const to = next.has(path) ? storableJson(next.get(path)) : null;
    if (canonicalJson(from) === canonicalJson(to)) continue;
    diff[path] = secret(path)
      ? { from: from === null ? null : REDACTED, to: to === null ? null : REDACTED }
      : { from, to };
  }
  return diff;
}
