import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { TestApp } from '../../../test/support/app.js';
import { runCli } from '../run.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for `--json` runs). */
  json<T = Record<string, unknown>>(): T;
}

export interface CliRunner {
  apiUrl: string;
  configDir: string;
  run(
    argv: string[],
    options?: { stdin?: string; env?: Record<string, string> },
  ): Promise<CliResult>;
  cleanup(): Promise<void>;
}

/** Runs `switchyard` in-process against a listening test app, with its own config dir. */
export async function cliFor(t: TestApp): Promise<CliRunner> {
  const address = t.app.server.address() as AddressInfo;
  const apiUrl = `http://127.0.0.1:${address.port}`;
  const configDir = await mkdtemp(join(tmpdir(), 'switchyard-cli-'));
  return {
    apiUrl,
    configDir,
    async run(argv, options = {}) {
      let stdout = '';
      let stderr = '';
      const code = await runCli(argv, {
        stdout: { write: (chunk: string) => (stdout += chunk) },
        stderr: { write: (chunk: string) => (stderr += chunk) },
        stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
        env: { HOME: configDir, SWITCHYARD_CONFIG_DIR: configDir, ...options.env },
        pollIntervalMs: 100,
      });
      return { code, stdout, stderr, json: <T>() => JSON.parse(stdout) as T };
    },
    cleanup: () => rm(configDir, { recursive: true, force: true }),
  };
}

let counter = 0;

/** Registers a fresh account through the CLI; the session lands in the runner's config dir. */
export async function registerThroughCli(
  cli: CliRunner,
): Promise<{ email: string; password: string }> {
  counter += 1;
  const email = `cli${counter}-${Date.now()}@example.com`;
  const password = 'correct horse battery staple';
  const result = await cli.run(
    [
      'register',
      '--api',
      cli.apiUrl,
      '--email',
      email,
      '--name',
      `CLI ${counter}`,
      '--password-stdin',
    ],
    { stdin: `${password}\n` },
  );
  if (result.code !== 0) throw new Error(`register failed (${result.code}): ${result.stderr}`);
  return { email, password };
}
