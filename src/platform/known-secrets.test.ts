import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import {
  createScrub,
  KnownSecrets,
  knownSecrets,
  MAX_VALUES,
  MIN_SCRUB_CHARS,
  REDACTED,
  textForms,
} from './known-secrets.js';
import { createLogger } from './logger.js';

const tricky = `pa"ss\\word\nnext-line-é-✓-😀-${randomBytes(4).toString('hex')}`;

describe('known secret values', () => {
  it('scrubs a value in each form text can hold it: raw, its lines, JSON-escaped, \\u-escaped, JSON in JSON, percent-encoded', () => {
    const registry = new KnownSecrets();
    registry.add(tricky);
    const json = JSON.stringify(tricky).slice(1, -1);
    const asciiJson = json.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    const nested = JSON.stringify(JSON.stringify({ field: tricky }));
    for (const text of [
      tricky,
      `line: ${tricky.split('\n')[1] ?? ''}`,
      `{"msg":"${json}"}`,
      `{"msg":"${asciiJson}"}`,
      nested,
      `https://user:${encodeURIComponent(tricky)}@host`,
    ]) {
      const scrubbed = registry.scrub(text);
      assert.ok(scrubbed.includes(REDACTED), `not scrubbed: ${scrubbed}`);
      for (const form of textForms(tricky)) assert.ok(!scrubbed.includes(form));
    }
    assert.deepEqual(JSON.parse(registry.scrub(`{"msg":"say ${json}!"}`)), {
      msg: `say ${REDACTED}!`,
    });
  });

  it(`leaves values shorter than ${MIN_SCRUB_CHARS} characters alone`, () => {
    const registry = new KnownSecrets();
    registry.add('true');
    registry.add('x'.repeat(MIN_SCRUB_CHARS - 1));
    assert.equal(registry.size, 0);
    assert.equal(registry.scrub('true and xxxxxxx'), 'true and xxxxxxx');
  });

  it('replaces the longer of two overlapping values, before and after the pattern is rebuilt', () => {
    const registry = new KnownSecrets();
    registry.add('secret-abcdef');
    assert.equal(registry.scrub('a secret-abcdef-more b'), `a ${REDACTED}-more b`);
    registry.add('secret-abcdef-more');
    assert.equal(registry.scrub('a secret-abcdef-more b'), `a ${REDACTED} b`);
    assert.equal(registry.scrub('secret-abcdef'), REDACTED);
  });

  it('finds values added since the last rebuild, and after many additions', () => {
    const registry = new KnownSecrets();
    const values = Array.from({ length: 500 }, () => `tok_${randomBytes(12).toString('hex')}`);
    for (const [index, value] of values.entries()) {
      registry.add(value);
      if (index % 7 === 0) assert.equal(registry.scrub(`>${value}<`), `>${REDACTED}<`);
    }
    const line = values.filter((_, index) => index % 50 === 0).join(' ');
    assert.equal(registry.scrub(line), Array(10).fill(REDACTED).join(' '));
  });

  it('keeps at most MAX_VALUES values, forgetting the ones seen longest ago', () => {
    const registry = new KnownSecrets();
    const first = `first-${randomBytes(8).toString('hex')}`;
    const second = `second-${randomBytes(8).toString('hex')}`;
    registry.add(first);
    registry.add(second);
    for (let index = 0; index < MAX_VALUES - 2; index++) registry.add(`filler-${index}-xxxxxx`);
    registry.add(first); // seen again: now the newest
    registry.add(`one-more-${randomBytes(8).toString('hex')}`);
    assert.equal(registry.size, MAX_VALUES);
    assert.equal(registry.scrub(first), REDACTED);
    assert.equal(registry.scrub(`[${second}]`).includes(second), true, 'the oldest is forgotten');
  });

  it('finds any one of thousands of values and leaves ordinary text alone', () => {
    // Its speed with many values is a benchmark's business (docs/secrets.md gives figures).
    const values = Array.from({ length: 5_000 }, () => randomBytes(16).toString('base64url'));
    const scrub = createScrub(values);
    const line = `{"level":30,"msg":"request completed","note":"${'ordinary text '.repeat(20)}"}`;
    assert.equal(scrub(line), line);
    for (const index of [0, 1, 2_500, 4_321, 4_999]) {
      assert.equal(scrub(`x${values[index] ?? ''}x`), `x${REDACTED}x`, `value ${index}`);
    }
  });
});

describe('the logger', () => {
  afterEach(() => knownSecrets.clear());

  it('scrubs known values from any field of a line, in their JSON-escaped form, and keeps the line JSON', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = createLogger({ level: 'info' }, destination);
    knownSecrets.add(tricky);
    logger.info(
      { req: { headers: { 'x-debug': tricky } }, body: { note: `echo ${tricky}` } },
      `saw ${tricky}`,
    );
    logger.child({ requestId: 'r1' }).warn({ err: new Error(`failed with ${tricky}`) }, 'oops');
    assert.equal(lines.length, 2);
    for (const line of lines) {
      for (const form of textForms(tricky)) assert.ok(!line.includes(form), line);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      assert.ok(JSON.stringify(parsed).includes(REDACTED));
    }
  });
});
