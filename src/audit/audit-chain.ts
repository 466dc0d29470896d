import {
  CompactSign,
  compactVerify,
  createLocalJWKSet,
  decodeProtectedHeader,
  type JSONWebKeySet,
} from 'jose';
import type { KeyObject } from 'node:crypto';
import type { SigningKey } from '../auth/keys.js';
import { chainHash, contentHashOf, type AuditRecord } from './audit-event.js';

/**
 * Checking the chain. The same code serves GET /v1/audit-events/verify (rows from the
 * database) and the offline check of an export (lines from a file), so both report a break
 * the same way.
 */
export type BreakReason =
  | 'content_hash_mismatch'
  | 'prev_hash_mismatch'
  | 'hash_mismatch'
  | 'sequence_gap'
  | 'head_mismatch'
  | 'checkpoint_mismatch'
  | 'checkpoint_signature_invalid';

export interface ChainBreak {
  seq: number;
  eventId: string | null;
  reason: BreakReason;
  message: string;
}

/** One position of the chain: with the event's content, or (for events withheld) its hashes only. */
export interface ChainLink {
  seq: number;
  contentHash: string;
  prevHash: string;
  hash: string;
  record?: AuditRecord;
}

const MESSAGES: Record<BreakReason, string> = {
  content_hash_mismatch:
    'the event content does not match its content hash: it was altered after it was written',
  prev_hash_mismatch:
    'the event does not point at the hash of the event before it: an event was removed, inserted or altered',
  hash_mismatch: 'the event hash is not SHA-256(prev_hash || content_hash)',
  sequence_gap: 'sequence numbers are not consecutive: an event is missing',
  head_mismatch: 'the chain head does not match the last event',
  checkpoint_mismatch: 'a signed checkpoint names a hash the chain does not have at that position',
  checkpoint_signature_invalid: 'a checkpoint signature does not verify with the published keys',
};

export function chainBreak(seq: number, eventId: string | null, reason: BreakReason): ChainBreak {
  return { seq, eventId, reason, message: MESSAGES[reason] };
}

/** Walks links in order from an anchor (the genesis, or a position already trusted). */
export class ChainVerifier {
  private seq: number;
  private hash: string;
  private checked = 0;

  constructor(anchor: { seq: number; hash: string }) {
    this.seq = anchor.seq;
    this.hash = anchor.hash;
  }

  get position(): { seq: number; hash: string } {
    return { seq: this.seq, hash: this.hash };
  }

  get count(): number {
    return this.checked;
  }

  /** Checks the next link; returns the break it shows, if any. */
  add(link: ChainLink): ChainBreak | undefined {
    const eventId = link.record?.id ?? null;
    if (link.seq !== this.seq + 1) return chainBreak(this.seq + 1, eventId, 'sequence_gap');
    if (link.record !== undefined) {
      const { contentHash, ...content } = link.record;
      if (contentHashOf(content) !== contentHash || contentHash !== link.contentHash) {
        return chainBreak(link.seq, eventId, 'content_hash_mismatch');
      }
    }
    if (link.prevHash !== this.hash) return chainBreak(link.seq, eventId, 'prev_hash_mismatch');
    if (chainHash(link.prevHash, link.contentHash) !== link.hash)
      return chainBreak(link.seq, eventId, 'hash_mismatch');
    this.seq = link.seq;
    this.hash = link.hash;
    this.checked += 1;
    return undefined;
  }
}

/** What a checkpoint signs. */
export interface CheckpointClaim {
  typ: 'switchyard-audit-checkpoint';
  seq: number;
  hash: string;
  /** ISO-8601 time of signing. */
  at: string;
}

/** Signs the chain head at `seq` as a compact JWS with the platform's signing key. */
export async function signCheckpoint(
  key: SigningKey,
  head: { seq: number; hash: string },
  at: Date,
): Promise<string> {
  const claim: CheckpointClaim = {
    typ: 'switchyard-audit-checkpoint',
    seq: head.seq,
    hash: head.hash,
    at: at.toISOString(),
  };
  return new CompactSign(Buffer.from(JSON.stringify(claim), 'utf8'))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWS' })
    .sign(key.privateKey);
}

function parseClaim(payload: Uint8Array): CheckpointClaim {
  const claim = JSON.parse(Buffer.from(payload).toString('utf8')) as Partial<CheckpointClaim>;
  if (
    claim.typ !== 'switchyard-audit-checkpoint' ||
    typeof claim.seq !== 'number' ||
    typeof claim.hash !== 'string' ||
    typeof claim.at !== 'string'
  ) {
    throw new Error('not a Switchyard audit checkpoint');
  }
  return claim as CheckpointClaim;
}

/** Verifies a checkpoint against a key resolved by its kid; throws when it does not verify. */
export async function verifyCheckpoint(
  jws: string,
  keyFor: (kid: string) => { publicKey: KeyObject; alg: string } | undefined,
): Promise<CheckpointClaim & { kid: string }> {
  const header = decodeProtectedHeader(jws);
  const kid = typeof header.kid === 'string' ? header.kid : '';
  const key = keyFor(kid);
  if (key === undefined) throw new Error(`no published key with kid "${kid}"`);
  const { payload } = await compactVerify(jws, key.publicKey, { algorithms: [key.alg] });
  return { ...parseClaim(payload), kid };
}

/** The same, against a JWK set (the offline check: /.well-known/jwks.json saved to a file). */
export async function verifyCheckpointWithJwks(
  jws: string,
  jwks: JSONWebKeySet,
): Promise<CheckpointClaim & { kid: string }> {
  const header = decodeProtectedHeader(jws);
  const { payload } = await compactVerify(jws, createLocalJWKSet(jwks));
  return { ...parseClaim(payload), kid: typeof header.kid === 'string' ? header.kid : '' };
}
