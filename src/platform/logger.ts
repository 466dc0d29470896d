import { pino, type Logger, type DestinationStream, type LoggerOptions } from 'pino';
import { knownSecrets, REDACTED } from './known-secrets.js';

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'password',
  'newPassword',
  'token',
  'accessToken',
  'refreshToken',
  'secret',
  'value',
  'values',
  'kubeconfig',
  '*.password',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.secret',
  '*.kubeconfig',
];

/**
 * Redaction in two layers: fields by path, then every known secret value wherever it sits in
 * the finished line (a header, an echoed body field, an error message), in the JSON-escaped
 * form the line holds it in.
 */
export const REDACTION: Pick<LoggerOptions, 'redact' | 'hooks'> = {
  redact: { paths: REDACTED_PATHS, censor: REDACTED },
  hooks: { streamWrite: (line) => knownSecrets.scrub(line) },
};

export function createLogger(
  options: { level: string; name?: string },
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      name: options.name ?? 'switchyard',
      level: options.level,
      ...REDACTION,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}

export type { Logger };
