/**
 * How results reach the user: human tables and fields by default, JSON with `--json`.
 * Results go to stdout; progress and diagnostics go to stderr in both modes.
 */

export interface Writer {
  write(chunk: string): unknown;
}

export interface Column<Row> {
  header: string;
  value: (row: Row) => string | number | boolean | null | undefined;
}

export interface Output {
  readonly isJson: boolean;
  /** Prints `value` as JSON, or the human rendering of it. */
  result(value: unknown, human: () => string): void;
  /** A line on stdout as it is (log lines, NDJSON events). */
  line(text: string): void;
  /** A line of progress or diagnostics on stderr. */
  progress(text: string): void;
}

export function createOutput(stdout: Writer, stderr: Writer, isJson: boolean): Output {
  return {
    isJson,
    result(value, human) {
      if (isJson) {
        stdout.write(`${JSON.stringify(value, null, 2)}\n`);
        return;
      }
      const text = human();
      if (text !== '') stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    line: (text) => stdout.write(`${text}\n`),
    progress: (text) => stderr.write(`${text}\n`),
  };
}

/** Columns padded to their widest cell; cells are cleaned of terminal control characters. */
export function formatTable<Row>(columns: Array<Column<Row>>, rows: Row[]): string {
  const cells = rows.map((row) => columns.map((column) => cell(column.value(row))));
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...cells.map((row) => (row[index] ?? '').length)),
  );
  const render = (values: string[]) =>
    values
      .map((value, index) => value.padEnd(widths[index] ?? 0))
      .join('  ')
      .trimEnd();
  return [render(columns.map((column) => column.header)), ...cells.map(render)].join('\n');
}

/** `label  value` lines with the labels aligned. */
export function formatFields(
  fields: Array<[string, string | number | boolean | null | undefined]>,
): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `${label.padEnd(width)}  ${cell(value)}`).join('\n');
}

/**
 * Removes escape sequences and control characters (other than tab) from text the server
 * sent, so a build log or a name cannot move the cursor or rewrite the terminal.
 */
export function sanitize(text: string): string {
  return text
    .replace(/\u001b\[[0-?]*[ -/]*[@-~]/g, '')
    .replace(/\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?/g, '')
    .replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, '');
}

/** `2024-05-01T10:00:00.123456Z` → `2024-05-01 10:00:00Z`. */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '-';
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
  return match === null ? iso : `${match[1] ?? ''} ${match[2] ?? ''}Z`;
}

export function shortSha(sha: string | null | undefined): string {
  return sha === null || sha === undefined ? '-' : sha.slice(0, 12);
}

function cell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return sanitize(String(value));
}
