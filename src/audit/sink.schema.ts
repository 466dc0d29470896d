import { Type } from '@sinclair/typebox';
import { LABEL_PATTERN, Nullable, Timestamp, Uuid } from '../platform/http/schemas.js';

const Format = Type.Union([Type.Literal('webhook'), Type.Literal('vanta'), Type.Literal('drata')]);

export const CreateSinkBody = Type.Object(
  {
    name: Type.String({ pattern: LABEL_PATTERN, maxLength: 63 }),
    format: Format,
    url: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'https; must pass the outbound URL guard',
    }),
    targetId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: "Vanta's resource id or Drata's connection id",
      }),
    ),
    signingSecret: Type.Optional(
      Type.String({ minLength: 32, maxLength: 256, description: 'Generated when absent' }),
    ),
    bearerToken: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description: 'Sent as Authorization: Bearer; stored encrypted',
      }),
    ),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 12 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);

export const UpdateSinkBody = Type.Object(
  { status: Type.Union([Type.Literal('active'), Type.Literal('paused')]) },
  { additionalProperties: false },
);

export const RedeliverBody = Type.Object(
  {
    seqs: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
        minItems: 1,
        maxItems: 10_000,
      }),
    ),
  },
  { additionalProperties: false },
);

const sinkFields = {
  id: Uuid,
  name: Type.String(),
  format: Format,
  url: Type.String({ description: 'Query values and credentials masked' }),
  targetId: Nullable(Type.String()),
  status: Type.Union([Type.Literal('active'), Type.Literal('paused')]),
  maxAttempts: Type.Integer(),
  batchSize: Type.Integer(),
  createdAt: Timestamp,
};

export const Sink = Type.Object(sinkFields);
export const SinkWithSecret = Type.Object({ ...sinkFields, signingSecret: Type.String() });
export const SinkWithCounts = Type.Object({
  ...sinkFields,
  deliveries: Type.Object({
    pending: Type.Integer(),
    delivered: Type.Integer(),
    dead: Type.Integer(),
  }),
});
