import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../platform/config.js';
import type { PasswordPolicy } from './auth.config.js';
import { createPasswordHasher, NO_PASSWORD } from './password.js';
import { verify as argon2Verify } from '@node-rs/argon2';
import bcrypt from 'bcrypt';

const argon2Policy: PasswordPolicy = {
  algorithm: 'argon2id',
  argon2: { memoryKib: 7_168, timeCost: 2, parallelism: 1 },
  bcryptCost: 10,
  minLength: 10,
  maxLength: 256,
};
const bcryptPolicy: PasswordPolicy = { ...argon2Policy, algorithm: 'bcrypt' };

describe('password hashing', () => {
  it('hashes with argon2id at the configured costs and verifies', async () => {
    const hasher = createPasswordHasher(argon2Policy);
    const stored = await hasher.hash('correct horse battery staple');
    assert.match(stored, /^\$argon2id\$v=19\$m=7168,t=2,p=1\$/);
    assert.equal(await hasher.verify(stored, 'correct horse battery staple'), true);
    assert.equal(await hasher.verify(stored, 'wrong horse battery staple'), false);
    assert.equal(hasher.needsRehash(stored), false);
  });

  it("hashes with bcrypt when selected, beyond bcrypt's 72-byte input limit", async () => {
    const hasher = createPasswordHasher(bcryptPolicy);
    const long = 'x'.repeat(80);
    const stored = await hasher.hash(long);
    assert.match(stored, /^\$bcrypt-sha256\$\$2b\$10\$/);
    assert.equal(await hasher.verify(stored, long), true);
    // Plain bcrypt would accept this: the first 72 bytes are the same.
    assert.equal(await hasher.verify(stored, `${'x'.repeat(72)}yyyyyyyy`), false);
  });

  it('verifies hashes of the other algorithm and asks to rehash them', async () => {
    const fromArgon = await createPasswordHasher(argon2Policy).hash('a password of some length');
    const bcryptHasher = createPasswordHasher(bcryptPolicy);
    assert.equal(await bcryptHasher.verify(fromArgon, 'a password of some length'), true);
    assert.equal(bcryptHasher.needsRehash(fromArgon), true);
    const costlier = createPasswordHasher({
      ...argon2Policy,
      argon2: { ...argon2Policy.argon2, timeCost: 3 },
    });
    assert.equal(costlier.needsRehash(fromArgon), true);
  });

  it('spends a real verify on a missing or unusable hash and answers false', async () => {
    // Which checks run, against hashes of which costs: the same work as a wrong password,
    // proved by the calls themselves rather than by timing them on a shared machine.
    const calls: Array<{ kind: string; costs: string }> = [];
    const costsOf = (stored: string) => /m=\d+,t=\d+,p=\d+/.exec(stored)?.[0] ?? stored.slice(0, 7);
    const hasher = createPasswordHasher(argon2Policy, {
      argon2Verify: async (stored, password) => {
        calls.push({ kind: 'argon2', costs: costsOf(stored) });
        return argon2Verify(stored, password);
      },
      bcryptCompare: async (input, stored) => {
        calls.push({ kind: 'bcrypt', costs: costsOf(stored) });
        return bcrypt.compare(input, stored);
      },
    });
    const stored = await hasher.hash('the real password');
    const cases = { real: stored, missing: undefined, ssoOnly: NO_PASSWORD, garbage: '$zz$nope' };
    const seen: Record<string, Array<{ kind: string; costs: string }>> = {};
    for (const [name, hash] of Object.entries(cases)) {
      calls.length = 0;
      assert.equal(await hasher.verify(hash, 'wrong password here'), false, name);
      seen[name] = [...calls];
    }
    const policyCosts = `m=${argon2Policy.argon2.memoryKib},t=${argon2Policy.argon2.timeCost},p=${argon2Policy.argon2.parallelism}`;
    for (const name of Object.keys(cases)) {
      assert.deepEqual(seen[name], [{ kind: 'argon2', costs: policyCosts }], name);
    }
  });
});

describe('password configuration', () => {
  const base = { SWITCHYARD_DATA_DIR: '/tmp/switchyard-config-test' };

  it('defaults to argon2id with OWASP costs and a 10 to 256 character length', () => {
    const { password } = loadConfig(base).auth;
    assert.deepEqual(password, {
      algorithm: 'argon2id',
      argon2: { memoryKib: 19_456, timeCost: 2, parallelism: 1 },
      bcryptCost: 12,
      minLength: 10,
      maxLength: 256,
    });
  });

  it('refuses costs outside safe bounds at startup, listing every problem', () => {
    assert.throws(
      () =>
        loadConfig({
          ...base,
          SWITCHYARD_PASSWORD_HASH: 'bcrypt',
          SWITCHYARD_BCRYPT_COST: '4',
          SWITCHYARD_ARGON2_MEMORY_KIB: '1024',
          SWITCHYARD_ARGON2_TIME_COST: '1',
          SWITCHYARD_PASSWORD_MIN_LENGTH: '40',
          SWITCHYARD_PASSWORD_MAX_LENGTH: '20',
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const text = error.problems.join('\n');
        assert.match(text, /SWITCHYARD_BCRYPT_COST: expected an integer from 10 to 15, got "4"/);
        assert.match(text, /SWITCHYARD_ARGON2_MEMORY_KIB: expected an integer from 7168/);
        assert.match(text, /SWITCHYARD_ARGON2_TIME_COST: expected an integer from 2/);
        assert.match(
          text,
          /SWITCHYARD_PASSWORD_MAX_LENGTH: must be at least SWITCHYARD_PASSWORD_MIN_LENGTH/,
        );
        return true;
      },
    );
    assert.throws(
      () => loadConfig({ ...base, SWITCHYARD_BCRYPT_COST: '16' }),
      /from 10 to 15, got "16"/,
    );
    assert.throws(
      () => loadConfig({ ...base, SWITCHYARD_PASSWORD_HASH: 'md5' }),
      /expected one of argon2id, bcrypt/,
    );
  });

  it('requires shared keys when several replicas share a database, from any one source', () => {
    const external = { ...base, DATABASE_URL: 'postgres://127.0.0.1/x' };
    assert.throws(
      () => loadConfig(external),
      /SWITCHYARD_JWT_KEYS_DIR: required when DATABASE_URL is set/,
    );
    assert.equal(
      loadConfig({ ...external, SWITCHYARD_JWT_KEYS_DIR: '/keys' }).auth.keysDir,
      '/keys',
    );
    assert.deepEqual(
      loadConfig({ ...external, SWITCHYARD_JWT_KEY_FILES: '/a.pem, /b.jwk' }).auth.keyFiles,
      ['/a.pem', '/b.jwk'],
    );
  });

  it('parses single sign-on settings and refuses plain http outside loopback', () => {
    const oidc = {
      ...base,
      SWITCHYARD_OIDC_ISSUER: 'http://127.0.0.1:9000',
      SWITCHYARD_OIDC_CLIENT_ID: 'switchyard',
      SWITCHYARD_OIDC_CLIENT_SECRET: 'secret',
      SWITCHYARD_OIDC_REDIRECT_URI: 'http://127.0.0.1:8080/v1/auth/oidc/callback',
      SWITCHYARD_OIDC_GROUP_ROLES: 'eng=shop:developer, sre=shop:admin:production',
    };
    assert.deepEqual(loadConfig(oidc).auth.oidc?.groupRoles, [
      { group: 'eng', project: 'shop', role: 'developer', environment: undefined },
      { group: 'sre', project: 'shop', role: 'admin', environment: 'production' },
    ]);
    assert.throws(
      () => loadConfig({ ...oidc, SWITCHYARD_OIDC_ISSUER: 'http://idp.example.com' }),
      /must be https/,
    );
    assert.throws(
      () => loadConfig({ ...oidc, SWITCHYARD_OIDC_GROUP_ROLES: 'eng=shop:god' }),
      /not group=project:role/,
    );
  });
});
