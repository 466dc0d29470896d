import { createScrub, knownSecrets, REDACTED } from '../platform/known-secrets.js';

/**
 * Build output reaches people, so every secret value is replaced before a line leaves the
 * builder. Output is cut into lines first and each whole line is redacted, which also covers a
 * secret that arrives split across two chunks of a pipe. The given values are hidden whatever
 * their length; then every value the process knows (see known-secrets.ts) is hidden too.
 */
export { REDACTED };

/** Lines longer than this are cut, so a process printing without newlines cannot exhaust memory. */
export const MAX_LINE_CHARS = 16 * 1024;

export interface Redactor {
  redact(text: string): string;
  /** The strings it hides, longest first. */
  readonly patterns: readonly string[];
}

export interface LineSink {
  write(chunk: string): void;
  /** Emits whatever is left after the last newline. */
  end(): void;
}

export function createRedactor(secrets: readonly string[]): Redactor {
  const patterns = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    patterns.add(secret);
    // Output is handled a line at a time, so a multi-line secret is hidden line by line.
    for (const piece of secret.split(/\r?\n/)) if (piece.trim().length > 0) patterns.add(piece);
  }
  const ordered = [...patterns].sort((a, b) => b.length - a.length);
  // One combined pattern: a line is scanned once however many values there are.
  const scrub = createScrub(ordered);

  return {
    patterns: ordered,
    redact: (text) => knownSecrets.scrub(scrub(text)),
  };
}

export const NO_REDACTION: Redactor = {
  patterns: [],
  redact: (text) => knownSecrets.scrub(text),
};

/** Splits a stream of text into lines (without `\n` or a trailing `\r`) and redacts each. */
export function createLineSink(redactor: Redactor, onLine: (line: string) => void): LineSink {
  const longest = redactor.patterns[0]?.length ?? 0;
  let buffer = '';

  const emit = (line: string) =>
    onLine(redactor.redact(line.endsWith('\r') ? line.slice(0, -1) : line));

  return {
    write(chunk) {
      buffer += chunk;
      let newline = buffer.indexOf('\n');
      while (newline !== -1) {
        emit(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf('\n');
      }
      while (buffer.length >= MAX_LINE_CHARS + longest) {
        const cut = safeCut(buffer, MAX_LINE_CHARS, redactor.patterns);
        emit(buffer.slice(0, cut));
        buffer = buffer.slice(cut);
      }
    },
    end() {
      if (buffer.length > 0) emit(buffer);
      buffer = '';
    },
  };
}

/**
 * A cut position at or before `wanted` that splits no occurrence of a pattern. `text` holds at
 * least `wanted` plus the longest pattern, so every occurrence crossing `wanted` is complete.
 */
function safeCut(text: string, wanted: number, patterns: readonly string[]): number {
  let cut = wanted;
  for (let moved = true; moved && cut > 0;) {
    moved = false;
    for (const pattern of patterns) {
      const at = text.indexOf(pattern, Math.max(0, cut - pattern.length + 1));
      if (at !== -1 && at < cut) {
        cut = at;
        moved = true;
      }
    }
  }
  if (cut > 0) return cut;

  // Only a secret longer than a whole line gets here: cut right after it instead.
  return patterns.find((pattern) => text.startsWith(pattern))?.length ?? wanted;
}
