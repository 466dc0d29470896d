import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../platform/errors.js';
import { ENV_NAME_PATTERN, parseDotenv, validateEnvName } from './dotenv.js';

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  'NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ==',
  '-----END PRIVATE KEY-----',
].join('\n');

/** Parses and returns the entries as a name → value object. */
function parse(text: string): Record<string, string> {
  return Object.fromEntries(parseDotenv(text).map(({ name, value }) => [name, value]));
}

function assertInvalid(text: string, line: number, name: string | null, inMessage: string): void {
  assert.throws(
    () => parseDotenv(text),
    (error: unknown) => {
      assert.ok(error instanceof AppError);
      assert.equal(error.code, 'ENV_VAR_INVALID');
      assert.deepEqual(error.details, { line, name });
      assert.match(error.message, new RegExp(`line ${line}\\b`));
      assert.ok(error.message.includes(inMessage), error.message);
      return true;
    },
  );
}

describe('parseDotenv', () => {
  test('reads NAME=value lines in order', () => {
    assert.deepEqual(parseDotenv('A=1\nB=two\n'), [
      { name: 'A', value: '1' },
      { name: 'B', value: 'two' },
    ]);
  });

  test('never expands $ references in any quoting', () => {
    assert.deepEqual(parse('A=$HOME\nB="${HOME}/x"\nC=\'$PATH\'\nD="\\$HOME"'), {
      A: '$HOME',
      B: '${HOME}/x',
      C: '$PATH',
      D: '\\$HOME',
    });
  });

  test('keeps single-quoted values literal, backslashes included', () => {
    assert.deepEqual(parse('A=\'a\\nb "c" # not a comment\''), { A: 'a\\nb "c" # not a comment' });
  });

  test('understands only \\n \\r \\t \\" \\\\ in double quotes', () => {
    assert.deepEqual(parse('A="1\\n2\\r3\\t4\\"5\\\\6\\x7\'8"'), { A: '1\n2\r3\t4"5\\6\\x7\'8' });
  });

  test('ends unquoted values at " #" and trims spaces and tabs', () => {
    assert.deepEqual(parse('A=  spaced value \t # comment\nB=a#b\nC=#c\nD= #only comment'), {
      A: 'spaced value',
      B: 'a#b',
      C: '#c',
      D: '',
    });
  });

  test('keeps # inside quotes and allows a comment after the closing quote', () => {
    assert.deepEqual(parse('A="x # y" # comment\nB=\'#\'#c'), { A: 'x # y', B: '#' });
  });

  test('keeps = signs inside values', () => {
    assert.deepEqual(parse('A=a=b==\nB="k=v"\nC=postgres://u@h/db?sslmode=require'), {
      A: 'a=b==',
      B: 'k=v',
      C: 'postgres://u@h/db?sslmode=require',
    });
  });

  test('keeps spaces inside quotes exactly', () => {
    assert.deepEqual(parse('A="  padded  "\nB=\'\t tab\'\nC = spaced name'), {
      A: '  padded  ',
      B: '\t tab',
      C: 'spaced name',
    });
  });

  test('keeps unicode values byte-exact', () => {
    const value = 'héllo wörld ✓ 日本語 🚀';
    assert.deepEqual(parse(`A=${value}\nB="${value}"\nC='${value}'`), {
      A: value,
      B: value,
      C: value,
    });
  });

  test('reads a multi-line PEM key in double quotes', () => {
    assert.deepEqual(parse(`KEY="${PEM}"\nNEXT=1`), { KEY: PEM, NEXT: '1' });
  });

  test('reads a multi-line PEM key in single quotes', () => {
    assert.deepEqual(parse(`KEY='${PEM}\n'\nNEXT=1`), { KEY: `${PEM}\n`, NEXT: '1' });
  });

  test('reads a PEM key written with \\n escapes in double quotes', () => {
    assert.deepEqual(parse(`KEY="${PEM.replaceAll('\n', '\\n')}"`), { KEY: PEM });
  });

  test('reads empty values', () => {
    assert.deepEqual(parse('A=\nB=""\nC=\'\'\nD=   '), { A: '', B: '', C: '', D: '' });
  });

  test('accepts the export prefix and still allows a variable named export', () => {
    assert.deepEqual(parse('export A=1\n  export\tB="2"\nexport=3\nexportC=4'), {
      A: '1',
      B: '2',
      export: '3',
      exportC: '4',
    });
  });

  test('skips blank lines and comment lines, indented or not', () => {
    assert.deepEqual(parseDotenv('# header\n\n   # indented\n\t\nA=1\n#B=2\n'), [
      { name: 'A', value: '1' },
    ]);
  });

  test('lets a later duplicate win, keeping the first position', () => {
    assert.deepEqual(parseDotenv('A=1\nB=2\nA=3'), [
      { name: 'A', value: '3' },
      { name: 'B', value: '2' },
    ]);
  });

  test('accepts CRLF line endings, also inside quoted values', () => {
    assert.deepEqual(parse('A=1\r\nB="x\r\ny"\r\nC=3\r\n'), { A: '1', B: 'x\ny', C: '3' });
  });

  test('ignores a byte-order mark', () => {
    assert.deepEqual(parseDotenv('\uFEFFA=1'), [{ name: 'A', value: '1' }]);
  });

  test('returns nothing for an empty file', () => {
    assert.deepEqual(parseDotenv(''), []);
  });

  test('refuses bad names with their line number', () => {
    assertInvalid('A=1\n1A=2', 2, '1A', '"1A" is not a valid variable name');
    assertInvalid('MY-VAR=1', 1, 'MY-VAR', '"MY-VAR"');
    assertInvalid('A B=1', 1, 'A B', '"A B"');
    assertInvalid('=value', 1, '', '""');
    assertInvalid('ÄPFEL=1', 1, 'ÄPFEL', '"ÄPFEL"');
  });

  test('refuses a line without = and does not echo it', () => {
    assertInvalid('A=1\nsecret-looking-text', 2, null, 'is not NAME=value');
    assert.throws(
      () => parseDotenv('secret-looking-text'),
      (error: Error) => {
        assert.ok(!error.message.includes('secret-looking-text'));
        return true;
      },
    );
  });

  test('refuses unterminated quotes at the line where the value starts', () => {
    assertInvalid('A=1\nB="never closed\nC=3', 2, 'B', 'unterminated double quote');
    assertInvalid("A=1\n\nB='never closed", 3, 'B', 'unterminated single quote');
    assertInvalid('B="escaped at the end\\"', 1, 'B', 'unterminated double quote');
  });

  test('refuses text after a closing quote, reporting the closing line', () => {
    assertInvalid('A="x\ny" z', 2, 'A', 'unexpected text after the closing quote of A');
  });

  test('counts lines inside multi-line values when reporting later errors', () => {
    assertInvalid(`KEY="${PEM}"\nBAD-NAME=1`, 6, 'BAD-NAME', '"BAD-NAME"');
  });

  test('refuses NUL characters, which no process environment can hold', () => {
    assertInvalid('A="x\\u0000"\nB=a\0b', 2, 'B', 'NUL');
  });

  test('never puts a value in an error message', () => {
    assert.throws(
      () => parseDotenv("TOKEN='hunter2"),
      (error: Error) => {
        assert.ok(!error.message.includes('hunter2'));
        return true;
      },
    );
  });
});

describe('validateEnvName', () => {
  test('accepts portable names', () => {
    for (const name of ['A', '_', '_A1', 'database_url', 'X_9']) validateEnvName(name);
  });

  test('refuses non-portable names with ENV_VAR_INVALID', () => {
    for (const name of ['', '9A', 'A-B', 'A.B', 'A B', 'É', 'A=B', 'A\nB']) {
      assert.throws(() => validateEnvName(name), { code: 'ENV_VAR_INVALID', details: { name } });
    }
  });

  test('ENV_NAME_PATTERN is the portable rule', () => {
    assert.equal(ENV_NAME_PATTERN.source, '^[A-Za-z_][A-Za-z0-9_]*$');
  });
});
