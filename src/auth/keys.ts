import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKeyInput,
  type KeyObject,
} from 'node:crypto';
import { basename, extname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { ConfigError } from '../platform/config.js';

export type SigningAlgorithm = 'EdDSA' | 'RS256' | 'ES256';

/** A public key that verifies access tokens: the algorithm is pinned to the key's type. */
export interface VerificationKey {
  kid: string;
  alg: SigningAlgorithm;
  publicKey: KeyObject;
  publicJwk: JWK;
}

/** A key that signs access tokens, with its public half. */
export interface SigningKey extends VerificationKey {
  privateKey: KeyObject;
}

export interface KeyRing {
  /** The key that signs new tokens: the pinned kid, else the newest private key. */
  signing: SigningKey;
  /** Every key that may verify, by kid (the signing key included). */
  verifying: ReadonlyMap<string, VerificationKey>;
  jwks(): { keys: JWK[] };
}

export interface KeySources {
  /** SWITCHYARD_JWT_PRIVATE_KEY_PATH: one PEM private key. */
  keyFile: string | undefined;
  /** SWITCHYARD_JWT_KEY_FILES: oldest first. */
  keyFiles?: readonly string[];
  /** SWITCHYARD_JWT_KEYS_DIR: files sorted by name, oldest first. */
  keysDir?: string | undefined;
  signingKeyId?: string | undefined;
  dataDir: string;
}

const KEY_EXTENSIONS = new Set(['.pem', '.key', '.jwk', '.json']);
const MIN_RSA_BITS = 2048;

/** The algorithm a key may be used with, or why Switchyard refuses the key. */
function algorithmOf(key: KeyObject): SigningAlgorithm | string {
  const details = key.asymmetricKeyDetails;
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    return bits >= MIN_RSA_BITS
      ? 'RS256'
      : `an RSA key of ${bits} bits (at least ${MIN_RSA_BITS} needed)`;
  }
  if (type === 'ec') {
    return details?.namedCurve === 'prime256v1'
      ? 'ES256'
      : `an EC key on ${details?.namedCurve ?? 'an unknown curve'} (only P-256 is accepted)`;
  }
  return `a ${String(type)} key (accepted: Ed25519, RSA, EC P-256)`;
}

function isAlgorithm(value: string): value is SigningAlgorithm {
  return value === 'EdDSA' || value === 'RS256' || value === 'ES256';
}

interface ParsedKey {
  privateKey: KeyObject | undefined;
  publicKey: KeyObject;
  kid: string | undefined;
  declaredAlg: string | undefined;
}

function parsePem(text: string): ParsedKey {
  if (text.includes('PRIVATE KEY')) {
    const privateKey = createPrivateKey(text);
    return {
      privateKey,
      publicKey: createPublicKey(privateKey),
      kid: undefined,
      declaredAlg: undefined,
    };
  }
  return {
    privateKey: undefined,
    publicKey: createPublicKey(text),
    kid: undefined,
    declaredAlg: undefined,
  };
}

function parseJwk(jwk: JWK): ParsedKey {
  if (jwk.use !== undefined && jwk.use !== 'sig')
    throw new Error(`"use" is "${jwk.use}", not "sig"`);
  const input = { key: jwk, format: 'jwk' } as JsonWebKeyInput;
  const privateKey = jwk.d === undefined ? undefined : createPrivateKey(input);
  const publicKey = privateKey === undefined ? createPublicKey(input) : createPublicKey(privateKey);
  return { privateKey, publicKey, kid: jwk.kid, declaredAlg: jwk.alg };
}

/** A file holds one PEM key, one JWK, or a JWK set. */
function parseKeyFile(text: string): ParsedKey[] {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return [parsePem(trimmed)];
  const json = JSON.parse(trimmed) as JWK | { keys?: unknown };
  if ('keys' in json && Array.isArray(json.keys)) return (json.keys as JWK[]).map(parseJwk);
  return [parseJwk(json as JWK)];
}

async function toKey(
  parsed: ParsedKey,
): Promise<VerificationKey & { privateKey: KeyObject | undefined }> {
  const alg = algorithmOf(parsed.publicKey);
  if (!isAlgorithm(alg)) throw new Error(`${alg} cannot sign access tokens`);
  if (parsed.declaredAlg !== undefined && parsed.declaredAlg !== alg) {
    throw new Error(`"alg" is ${parsed.declaredAlg} but the key is for ${alg}`);
  }
  const jwk = await exportJWK(parsed.publicKey);
  const kid = parsed.kid ?? (await calculateJwkThumbprint(jwk));
  return {
    kid,
    alg,
    privateKey: parsed.privateKey,
    publicKey: parsed.publicKey,
    publicJwk: { ...jwk, kid, alg, use: 'sig' },
  };
}

/** Builds a signing key from one PEM private key (tests and the embedded key use it). */
export async function signingKeyFromPem(pem: string): Promise<SigningKey> {
  const key = await toKey(parsePem(pem));
  if (key.privateKey === undefined) throw new Error('the PEM holds no private key');
  return { ...key, privateKey: key.privateKey };
}

/**
 * Reads the embedded key from the data folder, generating it on the first start. The file
 * is created exclusively (mode 0600), so two processes starting together agree on one key.
 */
export function ensureEmbeddedKeyPem(dataDir: string): string {
  const dir = join(dataDir, 'keys');
  const path = join(dir, 'jwt-signing-ed25519.pem');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    writeFileSync(path, pem, { mode: 0o600, flag: 'wx' });
    return pem;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(path, 'utf8');
    throw error;
  }
}

/** The configured key files, oldest first; throws ConfigError when more than one source is set. */
function keyPaths(sources: KeySources): string[] {
  const fileList = sources.keyFiles ?? [];
  const used = [sources.keyFile !== undefined, fileList.length > 0, sources.keysDir !== undefined];
  if (used.filter(Boolean).length > 1) {
    throw new ConfigError([
      'set only one of SWITCHYARD_JWT_PRIVATE_KEY_PATH, SWITCHYARD_JWT_KEY_FILES and SWITCHYARD_JWT_KEYS_DIR',
    ]);
  }
  if (sources.keyFile !== undefined) return [sources.keyFile];
  if (fileList.length > 0) return [...fileList];
  if (sources.keysDir === undefined) return [];
  const dir = sources.keysDir;
  try {
    return readdirSync(dir)
      .filter((name) => KEY_EXTENSIONS.has(extname(name)) && !name.startsWith('.'))
      .sort()
      .map((name) => join(dir, name));
  } catch (error) {
    throw new ConfigError([
      `SWITCHYARD_JWT_KEYS_DIR: cannot read ${dir} (${(error as Error).message})`,
    ]);
  }
}

async function readKeys(paths: string[], problems: string[]) {
  const keys: Array<VerificationKey & { privateKey: KeyObject | undefined }> = [];
  for (const path of paths) {
    try {
      for (const parsed of parseKeyFile(readFileSync(path, 'utf8'))) keys.push(await toKey(parsed));
    } catch (error) {
      problems.push(`JWT key ${basename(path)}: ${(error as Error).message}`);
    }
  }
  return keys;
}

/**
 * Loads every configured key. The newest private key signs (or the one SWITCHYARD_JWT_SIGNING_KID
 * names); all of them, and public-only keys, verify. Every problem is reported in one ConfigError.
 */
export async function loadKeyRing(sources: KeySources): Promise<KeyRing> {
  const paths = keyPaths(sources);
  const problems: string[] = [];
  const keys =
    paths.length === 0
      ? [await signingKeyFromPem(ensureEmbeddedKeyPem(sources.dataDir))]
      : await readKeys(paths, problems);
  if (paths.length > 0 && keys.length === 0 && problems.length === 0) {
    problems.push('no JWT keys found in the configured files or folder');
  }

  const verifying = new Map<string, VerificationKey>();
  for (const key of keys) {
    if (verifying.has(key.kid)) problems.push(`JWT key id ${key.kid} appears twice`);
    verifying.set(key.kid, {
      kid: key.kid,
      alg: key.alg,
      publicKey: key.publicKey,
      publicJwk: key.publicJwk,
    });
  }
  const candidates = keys.filter((key) => key.privateKey !== undefined);
  const chosen =
    sources.signingKeyId === undefined
      ? candidates.at(-1)
      : candidates.find((key) => key.kid === sources.signingKeyId);
  if (chosen === undefined && problems.length === 0) {
    problems.push(
      sources.signingKeyId === undefined
        ? 'no JWT private key configured: at least one key must be able to sign'
        : `SWITCHYARD_JWT_SIGNING_KID: no private key has kid ${sources.signingKeyId}`,
    );
  }
  if (problems.length > 0 || chosen?.privateKey === undefined) throw new ConfigError(problems);

  const signing: SigningKey = { ...chosen, privateKey: chosen.privateKey };
  const published = [...verifying.values()].map((key) => key.publicJwk);
  return { signing, verifying, jwks: () => ({ keys: published }) };
}
