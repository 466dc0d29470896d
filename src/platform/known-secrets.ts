/**
 * Every secret value this process has handled, so text leaving it (log lines, log streams,
 * error messages) can be scrubbed of them wherever they turn up — in a field no redaction
 * path names, echoed by an app, printed by a build. Lockbox adds values as it writes and
 * opens them; platform credentials add theirs as they are read.
 *
 * Values shorter than MIN_SCRUB_CHARS are not scrubbed: replacing every "true" or "8080" in
 * every log line would shred ordinary text. Memory is bounded: past MAX_VALUES values or
 * MAX_TOTAL_CHARS characters (all forms counted), the values added or seen longest ago are
 * forgotten first.
 */
export const REDACTED = '[REDACTED]';

/** Shorter values are left alone (see above); documented in docs/secrets.md. */
export const MIN_SCRUB_CHARS = 8;
export const MAX_VALUES = 10_000;
export const MAX_TOTAL_CHARS = 8 * 1024 * 1024;

export type Scrub = (text: string) => string;

/**
 * The forms a value takes in text we emit: as is, each of its lines (output is read a line at
 * a time), inside a JSON string (escaped quotes, backslashes, control characters), the same
 * with non-ASCII as `\u` escapes, JSON inside JSON, and percent-encoded (credentials in URLs).
 */
export function textForms(value: string): string[] {
  const forms = new Set<string>([value]);
  for (const line of value.split(/\r?\n/))
    if (line.trim().length >= MIN_SCRUB_CHARS) forms.add(line);
  for (const form of [...forms]) {
    const json = JSON.stringify(form).slice(1, -1);
    forms.add(json);
    forms.add(
      json.replace(
        /[\u0080-\uffff]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
      ),
    );
    forms.add(JSON.stringify(json).slice(1, -1));
  }
  forms.add(encodeURIComponent(value));
  return [...forms].filter((form) => form.length >= MIN_SCRUB_CHARS);
}

// Patterns are found by a rolling hash of their first WINDOW code units: one pass over the
// text and one map look-up per position, however many patterns there are.
const WINDOW = MIN_SCRUB_CHARS;
const BASE = 31;
const BASE_TO_WINDOW = Array.from({ length: WINDOW - 1 }).reduce<number>(
  (power) => Math.imul(power, BASE),
  1,
);

function hashAt(text: string, start: number): number {
  let hash = 0;
  for (let index = start; index < start + WINDOW; index++) {
    hash = (Math.imul(hash, BASE) + text.charCodeAt(index)) | 0;
  }
  return hash;
}

/** Up to this many patterns, searching for each beats hashing every position (measured). */
const FEW_PATTERNS = 16;

function replaceEach(text: string, patterns: readonly string[]): string {
  let result = text;
  for (const pattern of patterns) {
    if (result.includes(pattern)) result = result.split(pattern).join(REDACTED);
  }
  return result;
}

function insertLongestFirst(list: string[], pattern: string): void {
  const at = list.findIndex((other) => other.length < pattern.length);
  list.splice(at === -1 ? list.length : at, 0, pattern);
}

/**
 * A set of strings to hide. At each position of a text the longest pattern starting there
 * wins; patterns may be added and removed at any time, without a rebuild. While there are
 * only a few, searching for each in turn is quicker than hashing every position; patterns
 * shorter than WINDOW (only build and workload redactors give them) are always searched so.
 */
export class PatternSet {
  readonly #counts = new Map<string, number>();
  readonly #buckets = new Map<number, string[]>();
  readonly #short: string[] = [];
  #longCount = 0;
  #few: string[] | undefined;

  add(pattern: string): void {
    if (pattern.length === 0) return;
    const count = this.#counts.get(pattern) ?? 0;
    this.#counts.set(pattern, count + 1);
    if (count > 0) return;
    if (pattern.length < WINDOW) return insertLongestFirst(this.#short, pattern);
    const hash = hashAt(pattern, 0);
    const bucket = this.#buckets.get(hash) ?? [];
    insertLongestFirst(bucket, pattern);
    this.#buckets.set(hash, bucket);
    this.#longCount++;
    this.#few = undefined;
  }

  delete(pattern: string): void {
    const count = this.#counts.get(pattern);
    if (count === undefined) return;
    if (count > 1) return void this.#counts.set(pattern, count - 1);
    this.#counts.delete(pattern);
    if (pattern.length < WINDOW) return void this.#short.splice(this.#short.indexOf(pattern), 1);
    const hash = hashAt(pattern, 0);
    const bucket = this.#buckets.get(hash) ?? [];
    bucket.splice(bucket.indexOf(pattern), 1);
    if (bucket.length === 0) this.#buckets.delete(hash);
    this.#longCount--;
    this.#few = undefined;
  }

  clear(): void {
    this.#counts.clear();
    this.#buckets.clear();
    this.#short.length = 0;
    this.#longCount = 0;
    this.#few = undefined;
  }

  scrub(text: string): string {
    let result = text;
    if (this.#longCount > FEW_PATTERNS) result = this.#scrubLong(text);
    else result = replaceEach(result, this.#fewLongestFirst());
    return replaceEach(result, this.#short);
  }

  #fewLongestFirst(): string[] {
    this.#few ??= [...this.#counts.keys()]
      .filter((pattern) => pattern.length >= WINDOW)
      .sort((a, b) => b.length - a.length);
    return this.#few;
  }

  #scrubLong(text: string): string {
    const lastStart = text.length - WINDOW;
    let output = '';
    let copied = 0;
    let index = 0;
    let hash = lastStart >= 0 ? hashAt(text, 0) : 0;
    while (index <= lastStart) {
      const match = this.#buckets.get(hash)?.find((pattern) => text.startsWith(pattern, index));
      if (match !== undefined) {
        output += text.slice(copied, index) + REDACTED;
        index += match.length;
        copied = index;
        if (index <= lastStart) hash = hashAt(text, index);
        continue;
      }
      if (index < lastStart) {
        const dropped = Math.imul(text.charCodeAt(index), BASE_TO_WINDOW);
        hash = (Math.imul(hash - dropped, BASE) + text.charCodeAt(index + WINDOW)) | 0;
      }
      index++;
    }
    return copied === 0 ? text : output + text.slice(copied);
  }
}

/** A function replacing every occurrence of any of the patterns with REDACTED. */
export function createScrub(patterns: Iterable<string>): Scrub {
  const set = new PatternSet();
  for (const pattern of patterns) set.add(pattern);
  return (text) => set.scrub(text);
}

export class KnownSecrets {
  /** Value → its forms; insertion order is recency. */
  readonly #values = new Map<string, string[]>();
  readonly #patterns = new PatternSet();
  #totalChars = 0;

  get size(): number {
    return this.#values.size;
  }

  /** Remembers a value (text, or bytes: UTF-8 text, else their base64); short ones are ignored. */
  add(value: string | Buffer): void {
    const text = typeof value === 'string' ? value : textOfBytes(value);
    if (text.length < MIN_SCRUB_CHARS) return;
    const known = this.#values.get(text);
    if (known !== undefined) {
      // Seen again: it is the newest now, so eviction reaches it last.
      this.#values.delete(text);
      this.#values.set(text, known);
      return;
    }
    const forms = textForms(text);
    const chars = charsOf(forms);
    for (const [oldest, oldForms] of this.#values) {
      if (this.#values.size < MAX_VALUES && this.#totalChars + chars <= MAX_TOTAL_CHARS) break;
      this.#values.delete(oldest);
      this.#totalChars -= charsOf(oldForms);
      for (const form of oldForms) this.#patterns.delete(form);
    }
    this.#values.set(text, forms);
    this.#totalChars += chars;
    for (const form of forms) this.#patterns.add(form);
  }

  /** `text` with every known value, in any of its forms, replaced by REDACTED. */
  scrub(text: string): string {
    return this.#values.size === 0 ? text : this.#patterns.scrub(text);
  }

  /** Forgets every value (tests). */
  clear(): void {
    this.#values.clear();
    this.#patterns.clear();
    this.#totalChars = 0;
  }
}

function charsOf(forms: readonly string[]): number {
  return forms.reduce((sum, form) => sum + form.length, 0);
}

function textOfBytes(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : bytes.toString('base64');
}

/** The process's registry: one per process, as the logger and the HTTP layer are. */
export const knownSecrets = new KnownSecrets();

/**
 * A JSON-able value with every known secret value scrubbed from its strings (an error's
 * details, an event sent to a client). A string containing a value becomes REDACTED in place.
 */
export function scrubJson<T>(value: T): T {
  const text = JSON.stringify(value);
  if (text === undefined) return value;
  const scrubbed = knownSecrets.scrub(text);
  return scrubbed === text ? value : (JSON.parse(scrubbed) as T);
}
