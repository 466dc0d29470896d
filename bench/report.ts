import type { Comparison, LoadResult } from './load.js';

/** One line of the summary: a figure, its target, and whether this run met it. */
export interface Check {
  name: string;
  target: string;
  measured: string;
  /** undefined: reported for information, no target. */
  isMet: boolean | undefined;
}

interface FigureRow {
  section: string;
  result: LoadResult;
}

function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

const marker = (isMet: boolean | undefined) =>
  isMet === undefined ? '' : isMet ? 'ok' : 'BELOW TARGET';

/** Collects figures as the parts run and prints them as two tables at the end. */
export class Report {
  readonly #figures: FigureRow[] = [];
  readonly #checks: Check[] = [];
  readonly #notes: string[] = [];

  addFigure(section: string, result: LoadResult): void {
    this.#figures.push({ section, result });
  }

  /** Records both sides and a ratio check; `minimumRatio` undefined makes it informational. */
  addComparison(section: string, comparison: Comparison, minimumRatio?: number): void {
    this.addFigure(section, comparison.baseline);
    this.addFigure(section, comparison.subject);
    const { subject, baseline, ratio } = comparison;
    this.addCheck({
      name: `${section}: req/s ratio`,
      target: minimumRatio === undefined ? '-' : `>= ${minimumRatio.toFixed(2)}`,
      measured:
        `${ratio.toFixed(2)} (CPU/req ratio ${comparison.cpuRatio.toFixed(2)}; ` +
        `p99 ${subject.p99Ms.toFixed(0)} vs ${baseline.p99Ms.toFixed(0)} ms)`,
      isMet: minimumRatio === undefined ? undefined : ratio >= minimumRatio,
    });
  }

  /** An informational ratio between two measured rows (req/s, and CPU per request). */
  addRatio(name: string, subject: LoadResult, baseline: LoadResult): void {
    const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b).toFixed(2);
    this.addCheck({
      name,
      target: '-',
      measured:
        `${ratio(subject.requestsPerSec, baseline.requestsPerSec)} ` +
        `(CPU/req ratio ${ratio(baseline.cpuUsPerRequest, subject.cpuUsPerRequest)})`,
      isMet: undefined,
    });
  }

  addCheck(check: Check): void {
    this.#checks.push(check);
  }

  addNote(note: string): void {
    this.#notes.push(note);
  }

  render(): string {
    const figures = this.#figures.map(({ section, result }) => [
      section,
      result.label,
      Math.round(result.requestsPerSec).toString(),
      result.p99Ms.toFixed(1),
      result.cpuUsPerRequest.toFixed(0),
      result.failures === 0 ? '' : `${result.failures} failed`,
    ]);
    const checks = this.#checks.map((check) => [
      check.name,
      check.target,
      check.measured,
      marker(check.isMet),
    ]);
    return [
      'Figures',
      formatTable(['section', 'measured', 'req/s', 'p99 ms', 'CPU µs/req', ''], figures),
      '',
      'Summary',
      formatTable(['figure', 'target', 'measured', ''], checks),
      ...(this.#notes.length === 0 ? [] : ['', 'Notes', ...this.#notes.map((note) => `- ${note}`)]),
    ].join('\n');
  }
}
