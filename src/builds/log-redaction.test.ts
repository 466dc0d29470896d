import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLineSink, createRedactor, MAX_LINE_CHARS, REDACTED } from './log-redaction.js';

function collect(secrets: string[], chunks: string[]): string[] {
  const lines: string[] = [];
  const sink = createLineSink(createRedactor(secrets), (line) => lines.push(line));
  for (const chunk of chunks) sink.write(chunk);
  sink.end();
  return lines;
}

test('splits chunks into lines, dropping \\r before \\n, and flushes the last partial line', () => {
  assert.deepEqual(collect([], ['one\r\ntw', 'o\nthree']), ['one', 'two', 'three']);
});

test('redacts a secret that arrives split across chunks', () => {
  const lines = collect(['hunter2-password'], ['login hunter', '2-pass', 'word ok\n']);
  assert.deepEqual(lines, [`login ${REDACTED} ok`]);
});

test('redacts every occurrence, the longer of two overlapping secrets first', () => {
  const lines = collect(['abc', 'abcdef'], ['abcdef abc xabcx\n']);
  assert.deepEqual(lines, [`${REDACTED} ${REDACTED} x${REDACTED}x`]);
});

test('redacts each line of a multi-line secret', () => {
  const key = '-----BEGIN KEY-----\nMIIBVgIBADANBg\n-----END KEY-----';
  const lines = collect([key], [`printing key:\n${key}\n`]);
  assert.ok(lines.every((line) => !line.includes('MIIBVgIBADANBg') && !line.includes('BEGIN KEY')));
});

test('ignores empty secrets', () => {
  assert.deepEqual(collect([''], ['nothing to hide\n']), ['nothing to hide']);
});

test('cuts an endless line without splitting a secret across the cut', () => {
  const secret = 'SECRET-VALUE-1234';
  const before = 'x'.repeat(MAX_LINE_CHARS - 5);
  const text = `${before}${secret}${'y'.repeat(MAX_LINE_CHARS)}`;
  const chunks = text.match(/[\s\S]{1,1000}/g) ?? [];
  const lines = collect([secret], chunks);

  assert.ok(lines.length > 1);
  assert.ok(lines.every((line) => line.length <= MAX_LINE_CHARS + REDACTED.length));
  assert.ok(lines.every((line) => !line.includes('SECRET')));
  assert.equal(lines.join('').split(REDACTED).length, 2);
});
