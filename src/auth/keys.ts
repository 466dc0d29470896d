import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

/** A key that signs access tokens, and the public half that verifies them. */
export interface SigningKey {
  kid: string;
  alg: 'EdDSA' | 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

export interface KeyRing {
  /** The newest key: it signs. */
  signing: SigningKey;
  /** Every key that may verify, by kid (the signing key included). */
  verifying: ReadonlyMap<string, SigningKey>;
  jwks(): { keys: JWK[] };
}

const ALGORITHMS: Partial<Record<string, SigningKey['alg']>> = {
  ed25519: 'EdDSA',
  rsa: 'RS256',
  ec: 'ES256',
};

function algorithmOf(key: KeyObject): SigningKey['alg'] {
  const alg = ALGORITHMS[key.asymmetricKeyType ?? ''];
  if (alg === undefined) {
    throw new Error(`unsupported signing key type ${String(key.asymmetricKeyType)}`);
  }
  return alg;
}

export async function signingKeyFromPem(pem: string): Promise<SigningKey> {
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const alg = algorithmOf(privateKey);
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, alg, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
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

export async function loadKeyRing(options: {
  keyFile: string | undefined;
  dataDir: string;
}): Promise<KeyRing> {
  const pem =
    options.keyFile !== undefined
      ? readFileSync(options.keyFile, 'utf8')
      : ensureEmbeddedKeyPem(options.dataDir);
  const signing = await signingKeyFromPem(pem);
  const verifying = new Map([[signing.kid, signing]]);
  return { signing, verifying, jwks: () => ({ keys: [...verifying.values()].map((key) => key.publicJwk) }) };
}
