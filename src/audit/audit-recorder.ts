import type { Trx } from '../platform/db/transaction.js';
import { currentAuditScope, takeEventId, type AuditScope } from './audit-context.js';
import {
  buildRecord,
  SYSTEM_ACTOR,
  type AuditEventInput,
  type AuditRecord,
  type RequestFacts,
} from './audit-event.js';
import type { AuditMetrics } from './audit.metrics.js';
import { insertEvents } from './audit.repository.js';
import type { AuditWriter } from './audit-writer.js';

const NO_FACTS: RequestFacts = { requestId: null, clientIp: null, userAgent: null };

/**
 * How services write the audit trail. A change records its event with `recordIn`, in the
 * transaction that makes the change, so both commit or neither does. Events with no
 * transaction to ride on (failed sign-ins, denials, reads) go through `record`, which queues
 * them for the batched writer and returns at once. Both take the actor and the request's
 * facts from the current audit scope unless the input names them.
 */
export interface AuditRecorder {
  recordIn(trx: Trx, input: AuditEventInput): Promise<AuditRecord>;
  record(input: AuditEventInput): AuditRecord;
  /** Queues an event built elsewhere (the HTTP hooks build the request's own event). */
  enqueue(record: AuditRecord): void;
}

function build(
  input: AuditEventInput,
  scope: AuditScope | undefined,
  tentative: boolean,
): AuditRecord {
  return buildRecord(input, {
    actor: scope?.actor ?? SYSTEM_ACTOR,
    facts: scope?.facts ?? NO_FACTS,
    id: takeEventId(scope, tentative),
  });
}

export function createAuditRecorder(deps: {
  writer: AuditWriter;
  metrics: AuditMetrics;
}): AuditRecorder {
  const { writer, metrics } = deps;
  return {
    async recordIn(trx, input) {
      const scope = currentAuditScope();
      const record = build(input, scope, true);
      if (scope !== undefined && record.id === scope.primaryId) {
        scope.tentativeEvent = { ...input, actorRole: record.actorRole };
      }
      await insertEvents(trx, [record]);
      metrics.written.inc({ path: 'transaction' });
      return record;
    },

    record(input) {
      const record = build(input, currentAuditScope(), false);
      writer.enqueue(record);
      return record;
    },

    enqueue(record) {
      writer.enqueue(record);
    },
  };
}
