import { Type, type Static } from '@sinclair/typebox';
import { Timestamp, Uuid } from '../platform/http/schemas.js';
import type { ReleaseRow } from '../platform/db/schema.js';

export const ReleaseSchema = Type.Object({
  id: Uuid,
  serviceId: Uuid,
  buildId: Uuid,
  version: Type.Integer(),
  commitSha: Type.String(),
  digest: Type.String(),
  kind: Type.String(),
  startCommand: Type.Object({ command: Type.String(), args: Type.Array(Type.String()) }),
  configKeys: Type.Array(Type.String(), {
    description: 'names of the configuration variables the release runs with',
  }),
  createdAt: Timestamp,
});

export function toReleaseResponse(row: ReleaseRow): Static<typeof ReleaseSchema> {
  return {
    id: row.id,
    serviceId: row.service_id,
    buildId: row.build_id,
    version: row.version,
    commitSha: row.commit_sha,
    digest: row.digest,
    kind: row.kind,
    startCommand: row.start_command,
    configKeys: Object.keys(row.config_snapshot).sort(),
    createdAt: row.created_at.toISOString(),
  };
}
