import type { KeyRing } from './keys.js';
import { verifyAccessToken, type AccessClaims, type TokenSettings } from './tokens.js';

/**
 * Verifies access tokens, remembering each one that passed until it expires. A client sends
 * the same token with every request of its life, and the signature check is the costliest step
 * of authenticating one.
 *
 * A remembered token skips only the checks that give the same answer for the same bytes (the
 * signature, the header, the claims' shape) under the same key ring, which never changes once
 * loaded. Its time claims passed when it was verified and hold until it expires, so it is
 * remembered for that span only, and from the moment of its check onwards (a clock that steps
 * back sends it through the full check again). Revocation is not verification's business: the
 * caller asks the deny list on every request, remembered or not.
 */
export interface AccessTokenVerifier {
  /** The token's claims; throws 401 AUTHENTICATION_FAILED as verifyAccessToken does. */
  verify(token: string, now?: Date): Promise<AccessClaims>;
}

interface Remembered {
  claims: AccessClaims;
  verifiedAtMs: number;
  expiresAtMs: number;
}

/** Enough for every token in use on a busy replica; at about 1 kB each, a few MB at most. */
export const REMEMBERED_TOKENS_MAX = 4_096;

export function createAccessTokenVerifier(
  keys: KeyRing,
  settings: TokenSettings,
  maxEntries = REMEMBERED_TOKENS_MAX,
): AccessTokenVerifier {
  const remembered = new Map<string, Remembered>();

  function recall(token: string, nowMs: number): AccessClaims | undefined {
    const entry = remembered.get(token);
    if (entry === undefined) return undefined;
    if (nowMs >= entry.verifiedAtMs && nowMs < entry.expiresAtMs) return entry.claims;
    remembered.delete(token);
    return undefined;
  }

  function remember(token: string, claims: AccessClaims, nowMs: number): void {
    // Past its expiry a token passes only within the clock skew: not worth remembering.
    if (claims.expiresAt.getTime() <= nowMs) return;
    if (remembered.size >= maxEntries) {
      // Map keeps insertion order: the first key is the token verified longest ago.
      const oldest = remembered.keys().next();
      if (oldest.done !== true) remembered.delete(oldest.value);
    }
    remembered.set(token, { claims, verifiedAtMs: nowMs, expiresAtMs: claims.expiresAt.getTime() });
  }

  return {
    async verify(token, now = new Date()) {
      const nowMs = now.getTime();
      const known = recall(token, nowMs);
      if (known !== undefined) return known;
      const claims = Object.freeze(await verifyAccessToken(keys, settings, token, now));
      remember(token, claims, nowMs);
      return claims;
    },
  };
}
