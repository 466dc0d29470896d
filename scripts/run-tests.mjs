// Runs every *.test.ts under src/ and test/ with Node's own test runner.
// Node 20 does not expand globs in `--test`, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

// Arguments are path fragments: plain ones select files, ones starting with ! leave files out.
const args = process.argv.slice(2);
const filters = args.filter((x) => !x.startsWith('!'));
const exclusions = args.filter((x) => x.startsWith('!')).map((x) => x.slice(1));
const roots = ['src', 'test'];
let files = roots.flatMap((root) => find(root, []));
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
files = files.filter((f) => !exclusions.some((x) => f.includes(x)));
files.sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(2);
}
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    // A file whose tests are done exits even if a handle leaked; leaks are tested for directly.
    '--test-force-exit',
    // A backstop: no single test may hang CI (tests that need longer say so themselves).
    '--test-timeout=300000',
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
