import type { JSONWebKeySet } from 'jose';
import type { Db } from '../platform/db/transaction.js';
import {
  chainBreak,
  ChainVerifier,
  verifyCheckpointWithJwks,
  type ChainBreak,
} from './audit-chain.js';
import { recordFromRow, type AuditRecord } from './audit-event.js';
import { eventsAfter, findCheckpointFrom, seqRange } from './audit.repository.js';
import type { AuditEventRow, CheckpointRow } from './audit.tables.js';

/**
 * Export of a time range as NDJSON that an auditor can verify offline with nothing but the
 * published public keys (`switchyard audit verify-export`). Lines, in order:
 *
 *   {"kind":"header", "format":"switchyard-audit-export/1", from, to, exportedAt}
 *   {"kind":"event", seq, prevHash, hash, ...the event}       an event the reader may see
 *   {"kind":"link", seq, contentHash, prevHash, hash}         an event withheld from this reader,
 *                                                              or after the range: hashes only
 *   {"kind":"checkpoint", seq, hash, keyId, signature}        the signed head the links reach
 *
 * Events are contiguous in the chain from the first that occurred at or after `from` to the
 * last before `to`; links continue the chain to the first checkpoint signed at or after it.
 * Recomputing every hash from the first line's prevHash and arriving at the checkpoint's
 * signed hash proves no exported event was altered, removed or inserted.
 */
export const EXPORT_FORMAT = 'switchyard-audit-export/1';
const PAGE = 500;

export type ExportLine =
  | { kind: 'header'; format: string; from: string; to: string; exportedAt: string }
  | ({ kind: 'event'; seq: number; prevHash: string; hash: string } & AuditRecord)
  | { kind: 'link'; seq: number; contentHash: string; prevHash: string; hash: string }
  | { kind: 'checkpoint'; seq: number; hash: string; keyId: string; signature: string };

export interface ExportRange {
  from: Date;
  to: Date;
  /** Whether the reader may see an event; the others become links. */
  isVisible(row: AuditEventRow): boolean;
  /** The checkpoint the export ends on: an existing one, or one signed now. */
  checkpointFrom(seq: number): Promise<CheckpointRow | undefined>;
}

function lineFor(row: AuditEventRow, visible: boolean): ExportLine {
  const seq = Number(row.seq);
  if (!visible)
    return {
      kind: 'link',
      seq,
      contentHash: row.content_hash,
      prevHash: row.prev_hash,
      hash: row.hash,
    };
  return { kind: 'event', seq, prevHash: row.prev_hash, hash: row.hash, ...recordFromRow(row) };
}

/** The export's lines, read from the database a page at a time. */
export async function* exportLines(db: Db, range: ExportRange): AsyncGenerator<ExportLine> {
  yield {
    kind: 'header',
    format: EXPORT_FORMAT,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    exportedAt: new Date().toISOString(),
  };
  const bounds = await seqRange(db, range.from, range.to);
  if (bounds === undefined) return;
  const checkpoint =
    (await range.checkpointFrom(bounds.last)) ?? (await findCheckpointFrom(db, bounds.last));
  const end = checkpoint === undefined ? bounds.last : Number(checkpoint.seq);

  for (let after = bounds.first - 1; after < end;) {
    const rows = await eventsAfter(db, after, PAGE, end);
    if (rows.length === 0) break;
    for (const row of rows)
      yield lineFor(row, Number(row.seq) <= bounds.last && range.isVisible(row));
    after = Number(rows[rows.length - 1]?.seq ?? end);
  }
  if (checkpoint !== undefined) {
    yield {
      kind: 'checkpoint',
      seq: Number(checkpoint.seq),
      hash: checkpoint.hash,
      keyId: checkpoint.key_id,
      signature: checkpoint.signature,
    };
  }
}

const CSV_COLUMNS = [
  'seq',
  'id',
  'occurredAt',
  'actorType',
  'actorId',
  'actorTokenId',
  'actorRole',
  'action',
  'outcome',
  'resourceType',
  'resourceId',
  'resourceName',
  'projectId',
  'environmentId',
  'clientIp',
  'userAgent',
  'requestId',
  'diff',
  'details',
  'contentHash',
  'prevHash',
  'hash',
] as const;

/**
 * One CSV cell. Cells a spreadsheet would run as a formula (=, +, -, @, tab, CR) get a
 * leading apostrophe; the CSV is for reading, the NDJSON export is the verifiable one.
 */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The export as CSV: a header row, then one row per visible event (no links or checkpoint). */
export async function* csvLines(lines: AsyncIterable<ExportLine>): AsyncGenerator<string> {
  yield `${CSV_COLUMNS.join(',')}\r\n`;
  for await (const line of lines) {
    if (line.kind !== 'event') continue;
    yield `${CSV_COLUMNS.map((column) => csvCell(line[column])).join(',')}\r\n`;
  }
}

export async function* ndjsonLines(lines: AsyncIterable<ExportLine>): AsyncGenerator<string> {
  for await (const line of lines) yield `${JSON.stringify(line)}\n`;
}

export interface ExportVerification {
  ok: boolean;
  events: number;
  links: number;
  /** The signed checkpoint the chain reached, when there was one and it verified. */
  checkpoint: { seq: number; hash: string; keyId: string; signedAt: string } | null;
  firstBreak: ChainBreak | null;
  problem: string | null;
}

/**
 * Verifies an NDJSON export offline: every event's content hash, every link, and the signed
 * checkpoint at the end against a JWK set. Lines may come from a file, read as they go.
 */
export async function verifyExport(
  lines: AsyncIterable<string> | Iterable<string>,
  jwks: JSONWebKeySet,
): Promise<ExportVerification> {
  let verifier: ChainVerifier | undefined;
  const result: ExportVerification = {
    ok: false,
    events: 0,
    links: 0,
    checkpoint: null,
    firstBreak: null,
    problem: null,
  };
  const fail = (problem: string, found?: ChainBreak) => ({
    ...result,
    problem,
    firstBreak: found ?? null,
  });
  let sawHeader = false;

  for await (const text of lines) {
    if (text.trim() === '') continue;
    const line = JSON.parse(text) as ExportLine;
    if (line.kind === 'header') {
      if (line.format !== EXPORT_FORMAT)
        return fail(`unknown export format ${String(line.format)}`);
      sawHeader = true;
      continue;
    }
    if (!sawHeader) return fail('the export does not start with its header line');
    if (line.kind === 'checkpoint') {
      try {
        const claim = await verifyCheckpointWithJwks(line.signature, jwks);
        const reached = verifier?.position;
        if (
          claim.seq !== line.seq ||
          claim.hash !== line.hash ||
          reached?.seq !== claim.seq ||
          reached.hash !== claim.hash
        ) {
          return fail(
            'the chain does not reach the signed checkpoint',
            chainBreak(line.seq, null, 'checkpoint_mismatch'),
          );
        }
        result.checkpoint = {
          seq: claim.seq,
          hash: claim.hash,
          keyId: claim.kid,
          signedAt: claim.at,
        };
      } catch {
        return fail(
          'the checkpoint signature does not verify with the given keys',
          chainBreak(line.seq, null, 'checkpoint_signature_invalid'),
        );
      }
      continue;
    }
    verifier ??= new ChainVerifier({ seq: line.seq - 1, hash: line.prevHash });
    const link =
      line.kind === 'event'
        ? {
            seq: line.seq,
            contentHash: line.contentHash,
            prevHash: line.prevHash,
            hash: line.hash,
            record: toRecord(line),
          }
        : line;
    const found = verifier.add(link);
    if (found !== undefined) return fail('the chain breaks', found);
    if (line.kind === 'event') result.events += 1;
    else result.links += 1;
  }
  if (result.checkpoint === null) {
    return fail(
      verifier === undefined
        ? 'the export holds no events'
        : 'the export ends without a signed checkpoint',
    );
  }
  return { ...result, ok: true };
}

function toRecord(line: Extract<ExportLine, { kind: 'event' }>): AuditRecord {
  const { kind: _kind, seq: _seq, prevHash: _prevHash, hash: _hash, ...record } = line;
  return record;
}
