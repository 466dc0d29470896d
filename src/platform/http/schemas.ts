import { Type, type TSchema } from '@sinclair/typebox';

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
      requestId: Type.String(),
    }),
  },
  { $id: 'ErrorEnvelope' },
);

/** RFC 1123 label: what may become a hostname part or a Kubernetes object name. */
export const LABEL_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

export const Uuid = Type.String({ format: 'uuid' });
export const Timestamp = Type.String({ format: 'date-time' });
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const ProjectParams = Type.Object(
  { project: Type.String({ minLength: 1, maxLength: 63 }) },
  { additionalProperties: false },
);

/** Error responses every authenticated route may give, for the OpenAPI document. */
export const commonErrors = {
  400: Type.Ref('ErrorEnvelope'),
  401: Type.Ref('ErrorEnvelope'),
  403: Type.Ref('ErrorEnvelope'),
  404: Type.Ref('ErrorEnvelope'),
  409: Type.Ref('ErrorEnvelope'),
  422: Type.Ref('ErrorEnvelope'),
  429: Type.Ref('ErrorEnvelope'),
  503: Type.Ref('ErrorEnvelope'),
};

export const Accepted = Type.Object({
  id: Uuid,
  status: Type.String(),
  statusUrl: Type.String(),
});
