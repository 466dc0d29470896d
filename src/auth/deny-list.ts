import { sql } from 'kysely';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../platform/db/transaction.js';
import { identityDb, type DenialKind } from './auth.tables.js';
import type { RedisFallback } from './redis-fallback.js';

/**
 * The deny list: access tokens (by jti) and sessions (by sid) refused before they expire.
 *
 * The database holds it; each replica keeps a copy in memory, so checking a request costs
 * no round trip. A denial is in the copy of the replica that made it at once, reaches the
 * others through Redis pub/sub within milliseconds when Redis is configured, and through
 * polling the database (every `pollMs`) in any case. An embedded (PGlite) installation is
 * one process, so it never polls.
 */
export interface DenyList {
  isDenied(tokenId: string, sessionId: string): boolean;
  denyToken(tokenId: string, expiresAt: Date): Promise<void>;
  /** Denies every access token of the sessions; they expire one access-token lifetime from now. */
  denySessions(sessionIds: readonly string[]): Promise<void>;
  /** Loads the list and starts following other replicas' denials. */
  start(): Promise<void>;
  /** Reads denials made elsewhere since the last read. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface DenyListOptions {
  db: Db;
  logger: Logger;
  /** Longest life of an access token, clock skew included: how long a session denial matters. */
  horizonSeconds: number;
  pollMs: number | undefined;
  redis: { client: Redis; channel: string; fallback: RedisFallback } | undefined;
}

interface Denial {
  kind: DenialKind;
  subject: string;
  expiresAtMs: number;
}

// Rows committed slightly out of order (a transaction that started earlier) are still read.
const POLL_OVERLAP_MS = 10_000;

export function createDenyList(options: DenyListOptions): DenyList {
  const { logger } = options;
  const db = identityDb(options.db);
  const entries: Record<DenialKind, Map<string, number>> = { token: new Map(), session: new Map() };
  let since: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let subscriber: Redis | undefined;
  let isClosed = false;
  let isPollFailing = false;

  function remember(denial: Denial): void {
    const map = entries[denial.kind];
    map.set(denial.subject, Math.max(map.get(denial.subject) ?? 0, denial.expiresAtMs));
  }

  function isLive(map: Map<string, number>, subject: string, now: number): boolean {
    const expiresAtMs = map.get(subject);
    if (expiresAtMs === undefined) return false;
    if (expiresAtMs > now) return true;
    map.delete(subject);
    return false;
  }

  async function persist(denials: Denial[]): Promise<void> {
    if (denials.length === 0) return;
    for (const denial of denials) remember(denial);
    await db
      .insertInto('auth_denials')
      .values(
        denials.map((d) => ({
          kind: d.kind,
          subject: d.subject,
          expires_at: new Date(d.expiresAtMs),
        })),
      )
      .onConflict((oc) =>
        oc.columns(['kind', 'subject']).doUpdateSet({
          expires_at: sql`greatest(auth_denials.expires_at, excluded.expires_at)`,
          created_at: sql`now()`,
        }),
      )
      .execute();
    await publish(denials);
  }

  async function publish(denials: Denial[]): Promise<void> {
    if (options.redis === undefined) return;
    const { client, channel, fallback } = options.redis;
    try {
      await client.publish(channel, JSON.stringify(denials));
      fallback.succeeded('deny_list');
    } catch (error) {
      // The database already has the denial; other replicas read it at their next poll.
      fallback.failed('deny_list', 'publish', error);
    }
  }

  async function readSince(from: Date | undefined): Promise<void> {
    const result = await sql<{
      kind: DenialKind | null;
      subject: string | null;
      expires_at: Date | null;
      db_now: Date;
    }>`
      SELECT d.kind, d.subject, d.expires_at, clock.db_now
      FROM (SELECT now() AS db_now) AS clock
      LEFT JOIN auth_denials AS d
        ON d.expires_at > clock.db_now
        AND (${from ?? null}::timestamptz IS NULL OR d.created_at > ${from ?? null}::timestamptz)
    `.execute(db);
    for (const row of result.rows) {
      if (row.kind === null || row.subject === null || row.expires_at === null) continue;
      remember({
        kind: row.kind,
        subject: row.subject,
        expiresAtMs: new Date(row.expires_at).getTime(),
      });
    }
    const dbNow = result.rows[0]?.db_now;
    if (dbNow !== undefined) since = new Date(new Date(dbNow).getTime() - POLL_OVERLAP_MS);
  }

  async function poll(): Promise<void> {
    try {
      // Expired rows are deleted by the identity purge job, not by every replica's poll.
      await readSince(since);
      if (isPollFailing) logger.info('deny list reads the database again');
      isPollFailing = false;
    } catch (error) {
      if (!isPollFailing)
        logger.warn({ err: error }, 'deny list cannot read the database; serving the cached copy');
      isPollFailing = true;
    }
  }

  function schedule(): void {
    if (isClosed || options.pollMs === undefined) return;
    timer = setTimeout(() => void poll().finally(schedule), options.pollMs);
    timer.unref();
  }

  async function subscribe(): Promise<void> {
    if (options.redis === undefined) return;
    const { client, channel, fallback } = options.redis;
    subscriber = client.duplicate({ enableOfflineQueue: true, lazyConnect: true });
    subscriber.on('error', (error: Error) => fallback.failed('deny_list', 'subscribe', error));
    subscriber.on('message', (_channel: string, message: string) => {
      for (const denial of parseMessage(message)) remember(denial);
    });
    try {
      await subscriber.connect();
      await subscriber.subscribe(channel);
    } catch (error) {
      // ioredis keeps reconnecting and resubscribes; until then the poll carries denials.
      fallback.failed('deny_list', 'subscribe', error);
    }
  }

  return {
    isDenied(tokenId, sessionId) {
      const now = Date.now();
      return isLive(entries.token, tokenId, now) || isLive(entries.session, sessionId, now);
    },

    async denyToken(tokenId, expiresAt) {
      await persist([{ kind: 'token', subject: tokenId, expiresAtMs: expiresAt.getTime() }]);
    },

    async denySessions(sessionIds) {
      const expiresAtMs = Date.now() + options.horizonSeconds * 1000;
      await persist(
        sessionIds.map((subject) => ({ kind: 'session' as const, subject, expiresAtMs })),
      );
    },

    async start() {
      await readSince(undefined);
      await subscribe();
      schedule();
    },

    sync: poll,

    async close() {
      isClosed = true;
      clearTimeout(timer);
      subscriber?.disconnect();
    },
  };
}

function parseMessage(message: string): Denial[] {
  try {
    const parsed: unknown = JSON.parse(message);
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (item): item is Denial =>
        typeof item === 'object' &&
        item !== null &&
        ((item as Denial).kind === 'token' || (item as Denial).kind === 'session') &&
        typeof (item as Denial).subject === 'string' &&
        typeof (item as Denial).expiresAtMs === 'number',
    );
  } catch {
    return [];
  }
}
