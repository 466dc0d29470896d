import type { Principal } from '../auth/auth.service.js';
import { authorize } from '../access/access.service.js';
import { AppError } from '../platform/errors.js';
import type { Db } from '../platform/db/transaction.js';
import { rowPosition } from '../platform/db/keyset.js';
import { toPage, type PageRequest } from '../platform/http/pagination.js';
import type { ServiceService } from '../services/service.service.js';
import * as repo from './release.repository.js';
import { toReleaseResponse } from './release.schema.js';

const RELEASE_NOT_FOUND = { code: 'RELEASE_NOT_FOUND', message: 'Release not found' } as const;

export function createReleaseService(deps: { db: Db; services: ServiceService }) {
  const { db } = deps;
  return {
    async list(principal: Principal, serviceId: string, page: PageRequest) {
      const { service } = await deps.services.access(principal, serviceId, 'project.read');
      const rows = await repo.listReleases(db, service.id, page);
      return toPage(rows, page, rowPosition, toReleaseResponse);
    },

    async get(principal: Principal, releaseId: string) {
      const found = await repo.findReleaseAccess(db, releaseId, principal.userId);
      authorize(principal, found?.access, 'project.read', RELEASE_NOT_FOUND);
      if (found === undefined) throw new AppError('RELEASE_NOT_FOUND', RELEASE_NOT_FOUND.message);
      return toReleaseResponse(found.release);
    },
  };
}

export type ReleaseService = ReturnType<typeof createReleaseService>;
