/**
 * What every client command receives: its parsed arguments, the output, and an API
 * client for the configured API. Also the exit codes and the errors that choose them.
 */
import type { ParseArgsConfig } from 'node:util';
import { ApiClient, type TokenSource } from './client.js';
import { credentialsPath, findCredentials, storedTokenSource } from './credentials.js';
import type { Output, Writer } from './output.js';

/** Exit codes scripts can rely on. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  VALIDATION: 10,
  BUILD_FAILED: 20,
  DEPLOY_FAILED: 30,
  TIMEOUT: 40,
  AUTHENTICATION: 50,
} as const;

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

export interface CliInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/** Everything the CLI touches outside itself, so tests can run it in-process. */
export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  stdin: CliInput;
  env: Record<string, string | undefined>;
  /** Aborts follows and waits (Ctrl-C in a terminal, the end of a test). */
  signal?: AbortSignal;
  /** How often `--follow` polls a deployment; 1 s unless a test says otherwise. */
  pollIntervalMs?: number;
}

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type FlagValue = string | boolean | Array<string | boolean> | undefined;
export type Flags = Record<string, FlagValue>;

export interface CommandContext {
  io: CliIo;
  out: Output;
  args: string[];
  flags: Flags;
  credentialsPath: string;
  /** `--api`, then SWITCHYARD_API_URL, then the stored URL, then the default. */
  apiUrl(): Promise<string>;
  /** A client carrying `--token`, SWITCHYARD_TOKEN or the stored session's token. */
  client(): Promise<ApiClient>;
}

export interface Command {
  /** As typed after `switchyard`, e.g. `deploy` or `services create`. */
  name: string;
  summary: string;
  /** The synopsis after the name, e.g. `<service> --env <environment> [--follow]`. */
  synopsis: string;
  /** Fewest and most positional arguments. */
  arity: [number, number];
  options: OptionsConfig;
  run(ctx: CommandContext): Promise<number | void>;
}

export interface CommandGroup {
  name: string;
  summary: string;
  subcommands: Command[];
}

/** The command line is wrong; the usage of the command is printed with the message. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure found on this side of the API, with the exit code it deserves. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export function createContext(
  io: CliIo,
  out: Output,
  args: string[],
  flags: Flags,
): CommandContext {
  const path = credentialsPath(io.env);
  const apiUrl = async () => {
    const explicit = stringFlag(flags, 'api') ?? nonEmpty(io.env['SWITCHYARD_API_URL']);
    const raw = explicit ?? (await findCredentials(path))?.apiUrl ?? DEFAULT_API_URL;
    return normalizeApiUrl(raw);
  };
  return {
    io,
    out,
    args,
    flags,
    credentialsPath: path,
    apiUrl,
    async client() {
      const url = await apiUrl();
      return new ApiClient(url, await tokenSourceFor(url));
    },
  };

  async function tokenSourceFor(url: string): Promise<TokenSource> {
    const token = stringFlag(flags, 'token') ?? nonEmpty(io.env['SWITCHYARD_TOKEN']);
    if (token !== undefined) return { token: async () => token };
    const stored = await findCredentials(path);
    if (stored?.accessToken === undefined || normalizeApiUrl(stored.apiUrl) !== url) {
      throw new CliError(
        `not logged in to ${url}: run \`switchyard login --api ${url}\` or set SWITCHYARD_TOKEN`,
        EXIT.AUTHENTICATION,
      );
    }
    return storedTokenSource(path, stored);
  }
}

/** `http(s)://host[:port][/path]` without a trailing slash; anything else is a usage error. */
export function normalizeApiUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--api: "${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--api: expected an http or https URL, got "${raw}"`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new UsageError('--api: the URL must not carry credentials, a query or a fragment');
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const value = flags[name];
  return typeof value === 'string' ? value : undefined;
}

export function requireFlag(flags: Flags, name: string): string {
  const value = stringFlag(flags, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

export function booleanFlag(flags: Flags, name: string): boolean {
  return flags[name] === true;
}

export function integerFlag(
  flags: Flags,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const raw = stringFlag(flags, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new UsageError(`--${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** The positional argument at `index`; run.ts has already checked the arity. */
export function arg(ctx: CommandContext, index: number): string {
  const value = ctx.args[index];
  if (value === undefined) throw new UsageError('missing argument');
  return value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** Ids the API takes in a path must be UUIDs; say so before asking it. */
export function requireId(value: string, what: string): string {
  if (!isUuid(value)) throw new UsageError(`${what} must be an id (a UUID), got "${value}"`);
  return value.toLowerCase();
}

/**
 * The positional argument at `index` as a service reference: an id, or
 * `<project>/<service-name>`. Checked before anything is sent to the API.
 */
export function serviceArg(ctx: CommandContext, index: number): string {
  return checkServiceRef(arg(ctx, index));
}

function checkServiceRef(ref: string): string {
  if (isUuid(ref)) return ref;
  const [project, name, extra] = ref.split('/');
  if (extra === undefined && project && name) return ref;
  throw new UsageError(`name a service by its id or as <project>/<service>, got "${ref}"`);
}

/**
 * The id of a service named by id or as `<project>/<service-name>` (looked up through the
 * project's service list). Throws CliError SERVICE_NOT_FOUND when the project has none.
 */
export async function resolveServiceId(client: ApiClient, ref: string): Promise<string> {
  if (isUuid(checkServiceRef(ref))) return ref.toLowerCase();
  const [project = '', name] = ref.split('/');

  let cursor: string | undefined;
  do {
    const page = await client.listServices(project, { limit: 100, ...(cursor ? { cursor } : {}) });
    const found = page.data.find((service) => service.name === name);
    if (found !== undefined) return found.id;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  throw new CliError(
    `project ${project} has no service named ${name ?? ''}`,
    EXIT.VALIDATION,
    'SERVICE_NOT_FOUND',
  );
}

/** `--limit` and `--cursor`, taken by every list command. */
export const pageOptions = {
  limit: { type: 'string' },
  cursor: { type: 'string' },
} as const satisfies OptionsConfig;

export function pageQuery(flags: Flags): { limit?: number; cursor?: string } {
  const limit = integerFlag(flags, 'limit', 1, 100);
  const cursor = stringFlag(flags, 'cursor');
  return { ...(limit === undefined ? {} : { limit }), ...(cursor === undefined ? {} : { cursor }) };
}

/** Tells a person how to see the next page; JSON output carries `nextCursor` itself. */
export function hintNextPage(
  ctx: CommandContext,
  page: { nextCursor: string | null },
  command: string,
): void {
  if (ctx.out.isJson || page.nextCursor === null) return;
  const args = ctx.args.join(' ');
  ctx.out.progress(
    `more: switchyard ${command}${args ? ` ${args}` : ''} --cursor ${page.nextCursor}`,
  );
}

/** Resolves after `ms`, or early when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
