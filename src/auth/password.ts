import { createHmac, randomBytes } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import bcrypt from 'bcrypt';
import type { PasswordPolicy } from './auth.config.js';

// @node-rs/argon2's Algorithm.Argon2id; its const enum cannot be imported here.
const ARGON2ID = 2;
const BCRYPT_SHA256 = '$bcrypt-sha256$';
const ARGON2_PARAMS = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/;
const BCRYPT = /^\$2[aby]\$(\d{2})\$/;

/** Marks an account that has no password (single sign-on only): nothing ever verifies. */
export const NO_PASSWORD = '!no-password';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /**
   * True when `password` matches `stored`. With no stored hash, or one that no algorithm
   * reads, it still spends the time of one verify, so the answer's timing is the same.
   */
  verify(stored: string | undefined, password: string): Promise<boolean>;
  /** True when the stored hash uses another algorithm or other costs than the policy. */
  needsRehash(stored: string): boolean;
}

/**
 * bcrypt reads only the first 72 bytes of its input, so passwords are first reduced to a
 * keyed SHA-256 (base64, 44 bytes). The fixed key keeps these digests from matching a plain
 * SHA-256 of the same password leaked elsewhere.
 */
function bcryptInput(password: string): string {
  return createHmac('sha256', 'switchyard bcrypt pre-hash')
    .update(password, 'utf8')
    .digest('base64');
}

/** The verify primitives, replaceable so a test can see which checks ran against what. */
export interface VerifyPrimitives {
  argon2Verify: (stored: string, password: string) => Promise<boolean>;
  bcryptCompare: (input: string, stored: string) => Promise<boolean>;
}

const LIBRARY_PRIMITIVES: VerifyPrimitives = {
  argon2Verify: (stored, password) => argon2Verify(stored, password),
  bcryptCompare: (input, stored) => bcrypt.compare(input, stored),
};

export function createPasswordHasher(
  policy: PasswordPolicy,
  primitives: VerifyPrimitives = LIBRARY_PRIMITIVES,
): PasswordHasher {
  const argon2Options = {
    algorithm: ARGON2ID,
    memoryCost: policy.argon2.memoryKib,
    timeCost: policy.argon2.timeCost,
    parallelism: policy.argon2.parallelism,
  };

  async function hash(password: string): Promise<string> {
    if (policy.algorithm === 'bcrypt') {
      return BCRYPT_SHA256 + (await bcrypt.hash(bcryptInput(password), policy.bcryptCost));
    }
    return argon2Hash(password, argon2Options);
  }

  // A real hash of a random string, made once: verifying against it costs what a real check
  // costs, so sign-in for an unknown account takes as long as a wrong password.
  let dummy: Promise<string> | undefined;
  const dummyHash = () => (dummy ??= hash(randomBytes(16).toString('hex')));

  async function verifyKnown(stored: string, password: string): Promise<boolean | undefined> {
    if (stored.startsWith('$argon2')) return primitives.argon2Verify(stored, password);
    if (stored.startsWith(BCRYPT_SHA256)) {
      return primitives.bcryptCompare(bcryptInput(password), stored.slice(BCRYPT_SHA256.length));
    }
    if (BCRYPT.test(stored)) return primitives.bcryptCompare(password, stored);
    return undefined;
  }

  return {
    hash,

    async verify(stored, password) {
      try {
        const result = stored === undefined ? undefined : await verifyKnown(stored, password);
        if (result !== undefined) return result;
        await verifyKnown(await dummyHash(), password);
        return false;
      } catch {
        return false;
      }
    },

    needsRehash(stored) {
      if (policy.algorithm === 'bcrypt') {
        const cost = BCRYPT.exec(stored.slice(BCRYPT_SHA256.length));
        return !stored.startsWith(BCRYPT_SHA256) || Number(cost?.[1]) !== policy.bcryptCost;
      }
      const params = ARGON2_PARAMS.exec(stored);
      return (
        params === null ||
        Number(params[1]) !== policy.argon2.memoryKib ||
        Number(params[2]) !== policy.argon2.timeCost ||
        Number(params[3]) !== policy.argon2.parallelism
      );
    },
  };
}
