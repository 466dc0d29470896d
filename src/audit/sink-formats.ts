import type { AuditRecord } from './audit-event.js';
import type { SinkFormat } from './audit.tables.js';

/** An event as delivered: the record with its place in the chain. */
export type ChainedEvent = AuditRecord & { seq: number; prevHash: string; hash: string };

export interface DeliveryEnvelope {
  deliveryId: string;
  sink: { id: string; name: string; targetId: string | null };
  events: ChainedEvent[];
}

function describe(event: ChainedEvent): string {
  const who = event.actorId ?? event.actorType;
  const what =
    event.resourceType === null
      ? ''
      : ` ${event.resourceType}${event.resourceName === null ? '' : ` "${event.resourceName}"`}`;
  return `${event.action}${what} by ${who}: ${event.outcome}`;
}

/** Flat, string-or-scalar properties: what evidence tools accept as custom fields. */
function properties(event: ChainedEvent): Record<string, string | number | boolean | null> {
  return {
    seq: event.seq,
    occurredAt: event.occurredAt,
    action: event.action,
    outcome: event.outcome,
    actorType: event.actorType,
    actorId: event.actorId,
    actorTokenId: event.actorTokenId,
    actorRole: event.actorRole,
    resourceType: event.resourceType,
    resourceId: event.resourceId,
    resourceName: event.resourceName,
    projectId: event.projectId,
    environmentId: event.environmentId,
    clientIp: event.clientIp,
    userAgent: event.userAgent,
    requestId: event.requestId,
    diff: event.diff === null ? null : JSON.stringify(event.diff),
    details: event.details === null ? null : JSON.stringify(event.details),
    hash: event.hash,
  };
}

/**
 * The body a sink receives. `webhook` is Switchyard's own shape (the events in full, with
 * their chain hashes); `vanta` follows the shape of Vanta's custom-resource sync (a resource
 * type id and a list of resources with a unique id, display name and custom properties);
 * `drata` the shape of Drata's custom-connection records (a connection id and records).
 */
export function payloadFor(format: SinkFormat, envelope: DeliveryEnvelope): unknown {
  const { deliveryId, sink, events } = envelope;
  switch (format) {
    case 'webhook':
      return { deliveryId, sink: sink.name, events };
    case 'vanta':
      return {
        resourceId: sink.targetId,
        resources: events.map((event) => ({
          uniqueId: event.id,
          displayName: describe(event),
          externalUrl: null,
          customProperties: properties(event),
        })),
      };
    case 'drata':
      return {
        connectionId: sink.targetId,
        deliveryId,
        data: events.map((event) => ({
          externalId: event.id,
          name: describe(event),
          occurredAt: event.occurredAt,
          ...properties(event),
        })),
      };
  }
}

/** The event ids a delivery body carries, for receivers and tests reading any format. */
export function eventIdsOf(format: SinkFormat, body: unknown): string[] {
  const value = body as {
    events?: Array<{ id: string }>;
    resources?: Array<{ uniqueId: string }>;
    data?: Array<{ externalId: string }>;
  };
  switch (format) {
    case 'webhook':
      return (value.events ?? []).map((event) => event.id);
    case 'vanta':
      return (value.resources ?? []).map((resource) => resource.uniqueId);
    case 'drata':
      return (value.data ?? []).map((record) => record.externalId);
  }
}
