// `npm start` runs this first: compiles src/ into dist/ unless dist/ is already newer than
// every source file and build setting, so a restart does not pay for a full type check.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

const STAMP = 'dist/.tsbuildinfo';

function newestIn(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const time = entry.isDirectory() ? newestIn(path) : statSync(path).mtimeMs;
    newest = Math.max(newest, time);
  }
  return newest;
}

function builtAt() {
  try {
    return statSync(STAMP).mtimeMs;
  } catch {
    return -1;
  }
}

const inputs = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];
const newestInput = Math.max(newestIn('src'), ...inputs.map((file) => statSync(file).mtimeMs));
if (builtAt() >= newestInput) process.exit(0);

console.error('switchyard: compiling src/ into dist/ (once per change; about a minute)');
const result = spawnSync(
  process.execPath,
  ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'],
  {
    stdio: 'inherit',
  },
);
if (result.status === 0) {
  // tsc leaves its build info alone when nothing it reads changed; mark dist/ as current anyway.
  const now = new Date();
  utimesSync(STAMP, now, now);
}
process.exit(result.status ?? 1);
