import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * How deliveries to compliance sinks are signed (docs/audit-sinks.md describes it for
 * receivers). Each request carries
 *
 *   X-Switchyard-Timestamp: <unix seconds when it was sent>
 *   X-Switchyard-Signature: v1=<hex HMAC-SHA256(signing secret, "<timestamp>.<raw body>")>
 *   X-Switchyard-Delivery:  <delivery id>
 *
 * A receiver recomputes the HMAC over the exact bytes it received, compares in constant
 * time, and refuses a timestamp outside its tolerance (replays), then de-duplicates events
 * by their ids (a retry after a lost answer carries them again).
 */
export const TIMESTAMP_HEADER = 'x-switchyard-timestamp';
export const SIGNATURE_HEADER = 'x-switchyard-signature';
export const DELIVERY_HEADER = 'x-switchyard-delivery';
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export function signatureFor(secret: string, timestamp: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`, 'utf8');
  mac.update(body);
  return `v1=${mac.digest('hex')}`;
}

export type SignatureCheck = 'valid' | 'missing' | 'stale' | 'mismatch';

/** The receiver's check: constant-time comparison, and a timestamp within `toleranceSeconds`. */
export function checkSignature(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string | Buffer,
  options: { now?: Date; toleranceSeconds?: number } = {},
): SignatureCheck {
  const { timestamp, signature } = headers;
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp))
    return 'missing';
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (
    Math.abs(nowSeconds - Number(timestamp)) >
    (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)
  )
    return 'stale';
  const expected = Buffer.from(signatureFor(secret, Number(timestamp), body), 'utf8');
  // A header may list several signatures (during a secret rotation); any one may match.
  for (const candidate of signature.split(/[ ,]+/)) {
    const given = Buffer.from(candidate, 'utf8');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return 'valid';
  }
  return 'mismatch';
}
