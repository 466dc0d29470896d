import { randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

// @node-rs/argon2's Algorithm.Argon2id; its const enum cannot be imported here.
const ARGON2ID = 2;

// A real hash of a random string, made once: verifying against it costs what a real check
// costs, so sign-in for an unknown account takes as long as a wrong password.
let dummyHash: Promise<string> | undefined;
const getDummyHash = () => (dummyHash ??= hash(randomBytes(16).toString('hex'), { algorithm: ARGON2ID }));

export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 256;

export async function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: ARGON2ID });
}

/** Verifies a password; with no stored hash it still spends the time of one verify. */
export async function verifyPassword(stored: string | undefined, password: string): Promise<boolean> {
  try {
    const isMatch = await verify(stored ?? (await getDummyHash()), password);
    return stored !== undefined && isMatch;
  } catch {
    return false;
  }
}
