import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/principal.js';
import type { Scope } from '../auth/auth.tables.js';
import { AppError } from '../platform/errors.js';
import type { Role } from '../platform/db/schema.js';
import type { ProjectAccessRow } from './access.repository.js';
import {
  assertCanGrant,
  assertEnvironmentInScope,
  assertFutureExpiry,
  authorize,
  type ProjectGrant,
} from './access.service.js';
import { isProjectWide, PERMISSIONS, type Permission } from './permissions.js';

const NOT_FOUND = { code: 'PROJECT_NOT_FOUND', message: 'Project not found' } as const;
const projectId = randomUUID();
const staging = randomUUID();
const now = new Date('2026-06-01T00:00:00Z');

const person = (overrides: Partial<Principal> = {}): Principal => ({
  userId: randomUUID(),
  isInstanceAdmin: false,
  credential: {
    kind: 'session',
    sessionId: randomUUID(),
    tokenId: randomUUID(),
    expiresAt: now,
    transport: 'bearer',
  },
  ...overrides,
});
const token = (scopes: Scope[], restrictedTo: string | null = null): Principal => ({
  userId: randomUUID(),
  isInstanceAdmin: false,
  credential: { kind: 'api_token', apiTokenId: randomUUID(), scopes, projectId: restrictedTo },
});
const grant = (role: Role | null, overrides: Partial<ProjectAccessRow> = {}): ProjectAccessRow => ({
  projectId,
  projectSlug: 'shop',
  projectStatus: 'active',
  role,
  environmentId: null,
  memberExpiresAt: null,
  ...overrides,
});

function outcome(
  principal: Principal,
  access: ProjectAccessRow | undefined,
  permission: Permission,
): string {
  try {
    authorize(principal, access, permission, NOT_FOUND, now);
    return 'allowed';
  } catch (error) {
    assert.ok(error instanceof AppError);
    return error.code;
  }
}

describe('authorize', () => {
  const cases: Array<[string, Principal, ProjectAccessRow | undefined, Permission, string]> = [
    ['a readonly member reads', person(), grant('readonly'), 'project.read', 'allowed'],
    [
      'a readonly member cannot deploy',
      person(),
      grant('readonly'),
      'deployment.create',
      'FORBIDDEN',
    ],
    ['a developer deploys', person(), grant('developer'), 'deployment.create', 'allowed'],
    [
      'a developer cannot manage members',
      person(),
      grant('developer'),
      'member.write',
      'FORBIDDEN',
    ],
    ['an admin cannot delete the project', person(), grant('admin'), 'project.delete', 'FORBIDDEN'],
    ['an owner deletes the project', person(), grant('owner'), 'project.delete', 'allowed'],
    ['a non-member sees nothing', person(), grant(null), 'project.read', 'PROJECT_NOT_FOUND'],
    ['a missing project is not found', person(), undefined, 'project.read', 'PROJECT_NOT_FOUND'],
    [
      'an expired grant is no grant',
      person(),
      grant('owner', { memberExpiresAt: new Date('2026-05-31T23:59:59Z') }),
      'project.read',
      'PROJECT_NOT_FOUND',
    ],
    [
      'a grant expiring later holds',
      person(),
      grant('developer', { memberExpiresAt: new Date('2026-06-02T00:00:00Z') }),
      'build.create',
      'allowed',
    ],
    [
      'an archived project is readable',
      person(),
      grant('developer', { projectStatus: 'archived' }),
      'project.read',
      'allowed',
    ],
    [
      'an archived project refuses writes',
      person(),
      grant('owner', { projectStatus: 'archived' }),
      'service.write',
      'FORBIDDEN',
    ],
    [
      'an archived project can be unarchived by an admin',
      person(),
      grant('admin', { projectStatus: 'archived' }),
      'project.update',
      'allowed',
    ],
    [
      'an instance admin acts as owner anywhere',
      person({ isInstanceAdmin: true }),
      grant(null),
      'project.delete',
      'allowed',
    ],
    [
      'a token with the scope acts within the role',
      token(['deploy']),
      grant('developer'),
      'deployment.create',
      'allowed',
    ],
    [
      'a token without the scope is refused',
      token(['read']),
      grant('owner'),
      'deployment.create',
      'FORBIDDEN',
    ],
    [
      'a token never exceeds the role',
      token(['admin']),
      grant('developer'),
      'member.write',
      'FORBIDDEN',
    ],
    [
      'an owner narrowed to one environment cannot manage members',
      person(),
      grant('owner', { environmentId: staging }),
      'member.write',
      'FORBIDDEN',
    ],
    [
      'an admin narrowed to one environment cannot change project settings',
      person(),
      grant('admin', { environmentId: staging }),
      'project.update',
      'FORBIDDEN',
    ],
    [
      'a developer narrowed to one environment cannot change the service',
      person(),
      grant('developer', { environmentId: staging }),
      'service.write',
      'FORBIDDEN',
    ],
    [
      'a developer narrowed to one environment cannot build',
      person(),
      grant('developer', { environmentId: staging }),
      'build.create',
      'FORBIDDEN',
    ],
    [
      'a developer narrowed to one environment still reads variables',
      person(),
      grant('developer', { environmentId: staging }),
      'variables.read',
      'allowed',
    ],
    [
      'a token restricted to this project works here',
      token(['read'], projectId),
      grant('readonly'),
      'project.read',
      'allowed',
    ],
    [
      'a token restricted elsewhere finds nothing here',
      token(['read'], randomUUID()),
      grant('owner'),
      'project.read',
      'PROJECT_NOT_FOUND',
    ],
  ];
  for (const [name, principal, access, permission, expected] of cases) {
    it(`${name}: ${expected}`, () => {
      assert.equal(outcome(principal, access, permission), expected);
    });
  }

  it('narrows a grant to its environment', () => {
    const scoped = authorize(
      person(),
      grant('developer', { environmentId: staging }),
      'deployment.create',
      NOT_FOUND,
      now,
    );
    assertEnvironmentInScope(scoped, staging);
    assert.throws(
      () => assertEnvironmentInScope(scoped, randomUUID()),
      /limited to another environment/,
    );
    const wide = authorize(
      person({ isInstanceAdmin: true }),
      grant('developer', { environmentId: staging }),
      'deployment.create',
      NOT_FOUND,
      now,
    );
    assertEnvironmentInScope(wide, randomUUID());
  });
});

describe('project-wide permissions', () => {
  it('leaves a narrowed grant only reads, deploys and secrets (checked per environment)', () => {
    const narrowed = (Object.keys(PERMISSIONS) as Permission[]).filter((p) => !isProjectWide(p));
    assert.deepEqual(narrowed.sort(), [
      'deployment.create',
      'member.read',
      'project.read',
      'secrets.destroy',
      'secrets.list',
      'secrets.read.service',
      'secrets.read.shared',
      'secrets.write.service',
      'secrets.write.shared',
      'variables.read',
    ]);
  });
});

describe('assertCanGrant', () => {
  const holder = (overrides: Partial<ProjectGrant> = {}): ProjectGrant => ({
    projectId,
    projectSlug: 'shop',
    role: 'admin',
    environmentId: null,
    expiresAt: null,
    ...overrides,
  });
  const code = (work: () => void) => {
    try {
      work();
      return 'allowed';
    } catch (error) {
      assert.ok(error instanceof AppError);
      return error.code;
    }
  };
  const later = new Date('2026-07-01T00:00:00Z');
  const sooner = new Date('2026-06-10T00:00:00Z');
  const request = { role: 'developer' as Role, environmentId: null, expiresAt: null };

  it("allows up to the granter's own role, and no higher", () => {
    assert.equal(
      code(() => assertCanGrant(holder(), { ...request, role: 'admin' })),
      'allowed',
    );
    assert.equal(
      code(() => assertCanGrant(holder(), { ...request, role: 'owner' })),
      'FORBIDDEN',
    );
  });

  it("keeps a narrowed granter's grants in their environment", () => {
    const narrowed = holder({ environmentId: staging });
    const inStaging = { ...request, environmentId: staging };
    assert.equal(
      code(() => assertCanGrant(narrowed, inStaging)),
      'allowed',
    );
    assert.equal(
      code(() => assertCanGrant(narrowed, request)),
      'FORBIDDEN',
    );
    const elsewhere = { ...request, environmentId: randomUUID() };
    assert.equal(
      code(() => assertCanGrant(narrowed, elsewhere)),
      'FORBIDDEN',
    );
  });

  it("makes an expiring granter's grants expire no later than theirs", () => {
    const expiring = holder({ expiresAt: later });
    assert.equal(
      code(() => assertCanGrant(expiring, request)),
      'FORBIDDEN',
    );
    const after = new Date(later.getTime() + 1);
    assert.equal(
      code(() => assertCanGrant(expiring, { ...request, expiresAt: after })),
      'FORBIDDEN',
    );
    assert.equal(
      code(() => assertCanGrant(expiring, { ...request, expiresAt: sooner })),
      'allowed',
    );
    assert.equal(
      code(() => assertCanGrant(holder(), { ...request, expiresAt: later })),
      'allowed',
    );
  });

  it('refuses an expiry that is not in the future with MEMBER_EXPIRY_INVALID', () => {
    assert.equal(
      code(() => assertFutureExpiry(now, now)),
      'MEMBER_EXPIRY_INVALID',
    );
    assert.equal(
      code(() => assertFutureExpiry(new Date('2020-01-01'), now)),
      'MEMBER_EXPIRY_INVALID',
    );
    assert.equal(
      code(() => assertFutureExpiry(sooner, now)),
      'allowed',
    );
    assert.equal(
      code(() => assertFutureExpiry(null, now)),
      'allowed',
    );
  });
});
