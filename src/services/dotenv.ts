/**
 * The `.env` bulk-import format for a service's configuration variables. The grammar is
 * documented in docs/dotenv.md; in short: `NAME=value` lines, `#` comments, an optional
 * `export ` prefix, single quotes literal, double quotes with five escapes, values never
 * expanded. Error messages name the variable and line but never echo a value.
 */
import { AppError } from '../platform/errors.js';

export interface DotenvEntry {
  name: string;
  value: string;
}

/** Portable variable names: what every shell and `execve` environment accepts. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

const ASSIGNMENT = /^[ \t]*(?:export[ \t]+)?([^=]*?)[ \t]*=/;
const AFTER_CLOSING_QUOTE = /^[ \t]*(?:#.*)?$/;
const INLINE_COMMENT = /[ \t]#/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '"': '"',
  '\\': '\\',
};

interface Cursor {
  pos: number;
  line: number;
}

/** Throws ENV_VAR_INVALID unless `name` matches ENV_NAME_PATTERN. */
export function validateEnvName(name: string): void {
  if (ENV_NAME_PATTERN.test(name)) return;
  throw new AppError('ENV_VAR_INVALID', badNameMessage(name), { details: { name } });
}

/**
 * Parses `.env` text into variables in order of first appearance; a later assignment of the
 * same name replaces the earlier value. Throws ENV_VAR_INVALID at the first malformed line.
 */
export function parseDotenv(text: string): DotenvEntry[] {
  const source = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  const values = new Map<string, string>();
  const cursor: Cursor = { pos: 0, line: 1 };

  while (cursor.pos < source.length) {
    const entry = readEntry(source, cursor);
    if (entry !== undefined) values.set(entry.name, entry.value);
  }
  return [...values].map(([name, value]) => ({ name, value }));
}

/** Reads one line (or one multi-line quoted entry) and moves the cursor past it. */
function readEntry(source: string, cursor: Cursor): DotenvEntry | undefined {
  const line = cursor.line;
  const lineEnd = endOfLine(source, cursor.pos);
  const text = source.slice(cursor.pos, lineEnd);
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) {
    moveTo(source, cursor, lineEnd);
    return undefined;
  }

  const match = ASSIGNMENT.exec(text);
  if (match === null) {
    const message = `line ${line} is not NAME=value (a multi-line value must be quoted)`;
    throw new AppError('ENV_VAR_INVALID', message, { details: { line, name: null } });
  }
  const name = match[1] ?? '';
  if (!ENV_NAME_PATTERN.test(name)) {
    throw invalid(line, name, `line ${line}: ${badNameMessage(name)}`);
  }

  const valueStart = cursor.pos + match[0].length;
  const raw = source.slice(valueStart, lineEnd);
  const quote = raw.trimStart()[0];
  const value =
    quote === '"' || quote === "'"
      ? readQuotedValue(source, cursor, valueStart + raw.indexOf(quote), name)
      : readUnquotedValue(source, cursor, raw, lineEnd);

  if (value.includes('\0')) {
    throw invalid(line, name, `line ${line}: the value of ${name} contains a NUL character`);
  }
  return { name, value };
}

// Ends at the first space or tab followed by `#`; surrounding spaces and tabs are trimmed.
function readUnquotedValue(source: string, cursor: Cursor, raw: string, lineEnd: number): string {
  moveTo(source, cursor, lineEnd);
  const comment = INLINE_COMMENT.exec(raw);
  const value = comment === null ? raw : raw.slice(0, comment.index);
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

function readQuotedValue(source: string, cursor: Cursor, open: number, name: string): string {
  const line = cursor.line;
  const quote = source[open];
  const { value, close } =
    quote === "'" ? readSingleQuoted(source, open) : readDoubleQuoted(source, open);
  if (close === -1) {
    const kind = quote === "'" ? 'single' : 'double';
    const message = `line ${line}: the value of ${name} has an unterminated ${kind} quote`;
    throw invalid(line, name, message);
  }

  const lineEnd = endOfLine(source, close + 1);
  if (!AFTER_CLOSING_QUOTE.test(source.slice(close + 1, lineEnd))) {
    const closingLine = line + countNewlines(source, open, close);
    const message = `line ${closingLine}: unexpected text after the closing quote of ${name}`;
    throw invalid(closingLine, name, message);
  }
  moveTo(source, cursor, lineEnd);
  return value;
}

/** Single quotes are literal: no escapes, newlines kept. `close` is -1 when unterminated. */
function readSingleQuoted(source: string, open: number): { value: string; close: number } {
  const close = source.indexOf("'", open + 1);
  return { value: close === -1 ? '' : source.slice(open + 1, close), close };
}

/** Double quotes understand \n \r \t \" \\ only; any other backslash is kept as written. */
function readDoubleQuoted(source: string, open: number): { value: string; close: number } {
  let value = '';
  for (let i = open + 1; i < source.length; i++) {
    const char = source[i] ?? '';
    if (char === '"') return { value, close: i };
    const escaped = char === '\\' ? DOUBLE_QUOTE_ESCAPES[source[i + 1] ?? ''] : undefined;
    if (escaped === undefined) {
      value += char;
    } else {
      value += escaped;
      i++;
    }
  }
  return { value, close: -1 };
}

/** Moves the cursor past the newline at `lineEnd`, counting the lines crossed. */
function moveTo(source: string, cursor: Cursor, lineEnd: number): void {
  cursor.line += countNewlines(source, cursor.pos, lineEnd) + 1;
  cursor.pos = lineEnd + 1;
}

function endOfLine(source: string, from: number): number {
  const end = source.indexOf('\n', from);
  return end === -1 ? source.length : end;
}

function countNewlines(source: string, from: number, to: number): number {
  let count = 0;
  for (let i = source.indexOf('\n', from); i !== -1 && i < to; i = source.indexOf('\n', i + 1)) {
    count++;
  }
  return count;
}

function badNameMessage(name: string): string {
  const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
  return `${shown} is not a valid variable name: use letters, digits and _, not starting with a digit`;
}

function invalid(line: number, name: string, message: string): AppError {
  return new AppError('ENV_VAR_INVALID', message, { details: { line, name } });
}
