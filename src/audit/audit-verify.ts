import type { KeyRing } from '../auth/keys.js';
import type { Db } from '../platform/db/transaction.js';
import { chainBreak, ChainVerifier, verifyCheckpoint, type ChainBreak } from './audit-chain.js';
import { GENESIS_HASH, recordFromRow } from './audit-event.js';
import { checkpointsAfter, eventsAfter, getChainHead } from './audit.repository.js';
import type { AuditEventRow, CheckpointRow } from './audit.tables.js';

export interface VerifyReport {
  ok: boolean;
  /** Events whose content and link were checked before the walk ended. */
  checkedEvents: number;
  head: { seq: number; hash: string };
  firstBreak: ChainBreak | null;
  checkpoints: {
    checked: number;
    /** Signed by a key no longer published (retired after a rotation): not a break. */
    unverifiable: number;
    latest: { seq: number; createdAt: string } | null;
  };
}

const PAGE = 1000;

function toLink(row: AuditEventRow) {
  return {
    seq: Number(row.seq),
    contentHash: row.content_hash,
    prevHash: row.prev_hash,
    hash: row.hash,
    record: recordFromRow(row),
  };
}

/** Checkpoints in order of position, read a page at a time as the walk reaches them. */
class CheckpointCursor {
  private buffer: CheckpointRow[] = [];
  private after = 0;
  private isDone = false;

  constructor(private readonly db: Db) {}

  /** The checkpoints signed at or before `seq` not handed out yet. */
  async upTo(seq: number): Promise<CheckpointRow[]> {
    const out: CheckpointRow[] = [];
    for (;;) {
      if (this.buffer.length === 0 && !this.isDone) {
        this.buffer = await checkpointsAfter(this.db, this.after, PAGE);
        this.isDone = this.buffer.length < PAGE;
        this.after = Number(this.buffer.at(-1)?.seq ?? this.after);
      }
      const next = this.buffer[0];
      if (next === undefined || Number(next.seq) > seq) return out;
      out.push(next);
      this.buffer.shift();
    }
  }
}

/** Checks checkpoints signed at the walk's position against the hash it reached there. */
async function checkCheckpoints(
  checkpoints: CheckpointRow[],
  at: { seq: number; hash: string },
  keys: KeyRing,
  tally: VerifyReport['checkpoints'],
): Promise<ChainBreak | undefined> {
  for (const checkpoint of checkpoints) {
    const seq = Number(checkpoint.seq);
    tally.latest = { seq, createdAt: checkpoint.created_at.toISOString() };
    if (!keys.verifying.has(checkpoint.key_id)) {
      tally.unverifiable += 1;
      continue;
    }
    try {
      const claim = await verifyCheckpoint(checkpoint.signature, (kid) => keys.verifying.get(kid));
      if (claim.seq !== seq || claim.hash !== checkpoint.hash)
        return chainBreak(seq, null, 'checkpoint_signature_invalid');
    } catch {
      return chainBreak(seq, null, 'checkpoint_signature_invalid');
    }
    if (seq !== at.seq || checkpoint.hash !== at.hash)
      return chainBreak(seq, null, 'checkpoint_mismatch');
    tally.checked += 1;
  }
  return undefined;
}

/**
 * Walks the whole chain from its start, a page at a time (memory stays flat), recomputing
 * every content hash and link, and checks each signed checkpoint on the way. Stops at the
 * first break. Events stored after the walk began are left for the next walk.
 */
export async function verifyChain(db: Db, keys: KeyRing): Promise<VerifyReport> {
  const head = await getChainHead(db);
  const verifier = new ChainVerifier({ seq: 0, hash: GENESIS_HASH });
  const tally: VerifyReport['checkpoints'] = { checked: 0, unverifiable: 0, latest: null };
  const report = (firstBreak: ChainBreak | null): VerifyReport => ({
    ok: firstBreak === null,
    checkedEvents: verifier.count,
    head,
    firstBreak,
    checkpoints: tally,
  });

  const checkpoints = new CheckpointCursor(db);
  for (let after = 0; after < head.seq;) {
    const rows = await eventsAfter(db, after, PAGE, head.seq);
    if (rows.length === 0) break;
    for (const row of rows) {
      const found = verifier.add(toLink(row));
      if (found !== undefined) return report(found);
      const signed = await checkpoints.upTo(verifier.position.seq);
      const badCheckpoint = await checkCheckpoints(signed, verifier.position, keys, tally);
      if (badCheckpoint !== undefined) return report(badCheckpoint);
    }
    after = Number(rows[rows.length - 1]?.seq ?? head.seq);
  }

  const reached = verifier.position;
  if (reached.seq !== head.seq) return report(chainBreak(reached.seq + 1, null, 'sequence_gap'));
  if (reached.hash !== head.hash) return report(chainBreak(head.seq, null, 'head_mismatch'));
  return report(null);
}
