import { readFile } from 'node:fs/promises';
import type { ApiClient, RotationResponse, SecretScopeRef } from '../client.js';
import {
  arg,
  booleanFlag,
  CliError,
  EXIT,
  integerFlag,
  isUuid,
  requireFlag,
  resolveServiceId,
  sleep,
  stringFlag,
  UsageError,
  type CliInput,
  type Command,
  type CommandContext,
  type CommandGroup,
} from '../context.js';
import { formatFields, formatTable } from '../output.js';
import { followOptions, followTimeoutMs } from './deploy.js';

/**
 * `switchyard secrets …`. The first argument names the scope: `<project>` (with `--env` for
 * one environment) or a service as `<project>/<service>` or its id. Values never come from
 * arguments (they would land in shell history and `ps`): from stdin or `--from-file`.
 */
const scopeOptions = { env: { type: 'string' } } as const;
const SCOPE_SYNOPSIS = '<project>|<project>/<service> [--env <environment>]';
const MAX_VALUE_BYTES = 64 * 1024;

async function scopeOf(ctx: CommandContext, client: ApiClient): Promise<SecretScopeRef> {
  const target = arg(ctx, 0);
  const environment = stringFlag(ctx.flags, 'env');
  const isService = target.includes('/') || isUuid(target);
  if (!isService)
    return environment === undefined ? { project: target } : { project: target, environment };
  if (environment !== undefined) {
    throw new UsageError(
      '--env narrows project secrets; a service secret reaches every environment',
    );
  }
  return { serviceId: await resolveServiceId(client, target) };
}

/** The value to store: the file's bytes with `--from-file`, else all of stdin, exactly. */
async function readValue(ctx: CommandContext): Promise<Buffer> {
  const file = stringFlag(ctx.flags, 'from-file');
  const value = file === undefined ? await readStdinBytes(ctx.io.stdin) : await readFileBytes(file);
  if (value.length === 0)
    throw new UsageError('the value is empty (pipe it in or use --from-file)');
  if (value.length > MAX_VALUE_BYTES)
    throw new UsageError(`the value is larger than ${MAX_VALUE_BYTES} bytes`);
  return value;
}

async function readStdinBytes(stdin: CliInput): Promise<Buffer> {
  if (stdin.isTTY === true) {
    throw new UsageError(
      'pipe the value in (printf %s "$VALUE" | switchyard secrets …) or use --from-file',
    );
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    size += buffer.length;
    if (size > MAX_VALUE_BYTES)
      throw new UsageError(`the value is larger than ${MAX_VALUE_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

async function readFileBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new CliError(
      `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      EXIT.FAILURE,
    );
  }
}

const list: Command = {
  name: 'secrets list',
  summary: 'list secrets: names, versions and times, never values',
  synopsis: SCOPE_SYNOPSIS,
  arity: [1, 1],
  options: scopeOptions,
  async run(ctx) {
    const client = await ctx.client();
    const page = await client.listSecrets(await scopeOf(ctx, client), { limit: 100 });
    ctx.out.result(page, () =>
      formatTable(
        [
          { header: 'NAME', value: (s) => s.name },
          { header: 'SCOPE', value: (s) => s.scope },
          { header: 'VERSION', value: (s) => s.currentVersion },
          { header: 'LATEST', value: (s) => s.latestVersion },
          { header: 'UPDATED', value: (s) => s.updatedAt },
        ],
        page.data,
      ),
    );
  },
};

const set: Command = {
  name: 'secrets set',
  summary: 'write a new version of a secret from stdin or a file',
  synopsis: `${SCOPE_SYNOPSIS} <NAME> [--from-file <path>]`,
  arity: [2, 2],
  options: { ...scopeOptions, 'from-file': { type: 'string' } },
  async run(ctx) {
    const value = await readValue(ctx);
    const client = await ctx.client();
    const secret = await client.putSecret(await scopeOf(ctx, client), arg(ctx, 1), value);
    ctx.out.result(secret, () => `${secret.name}: version ${secret.currentVersion} written`);
  },
};

const get: Command = {
  name: 'secrets get',
  summary: 'print a value (the current version unless --version); the read is audited',
  synopsis: `${SCOPE_SYNOPSIS} <NAME> [--version <n>]`,
  arity: [2, 2],
  options: { ...scopeOptions, version: { type: 'string' } },
  async run(ctx) {
    const version = integerFlag(ctx.flags, 'version', 1, 1_000_000);
    const client = await ctx.client();
    const read = await client.readSecret(await scopeOf(ctx, client), arg(ctx, 1), version);
    if (ctx.out.isJson) return ctx.out.result(read, () => '');
    if (read.value === undefined) {
      throw new CliError(
        'the value is not text; use --json for it as valueBase64',
        EXIT.VALIDATION,
      );
    }
    // Exactly the stored bytes: no newline is added.
    ctx.io.stdout.write(read.value);
  },
};

const versions: Command = {
  name: 'secrets versions',
  summary: "list a secret's versions and their states",
  synopsis: `${SCOPE_SYNOPSIS} <NAME>`,
  arity: [2, 2],
  options: scopeOptions,
  async run(ctx) {
    const client = await ctx.client();
    const found = await client.secretVersions(await scopeOf(ctx, client), arg(ctx, 1));
    ctx.out.result(found, () =>
      formatTable(
        [
          { header: 'VERSION', value: (v) => (v.isCurrent ? `${v.version} (current)` : v.version) },
          { header: 'STATE', value: (v) => v.state },
          { header: 'CREATED', value: (v) => v.createdAt },
        ],
        found.data,
      ),
    );
  },
};

const rollback: Command = {
  name: 'secrets rollback',
  summary: 'make an earlier version current again (new deployments get it)',
  synopsis: `${SCOPE_SYNOPSIS} <NAME> --version <n>`,
  arity: [2, 2],
  options: { ...scopeOptions, version: { type: 'string' } },
  async run(ctx) {
    requireFlag(ctx.flags, 'version');
    const version = integerFlag(ctx.flags, 'version', 1, 1_000_000) ?? 1;
    const client = await ctx.client();
    const secret = await client.restoreSecret(await scopeOf(ctx, client), arg(ctx, 1), version);
    ctx.out.result(secret, () => `${secret.name}: version ${secret.currentVersion} is current`);
  },
};

const rotate: Command = {
  name: 'secrets rotate',
  summary: 'rotate: new version, roll every deployment using it, verify health, or undo all',
  synopsis: `${SCOPE_SYNOPSIS} <NAME> [--from-file <path> | --stdin | --generate-bytes <n>] [--follow] [--timeout-seconds <s>]`,
  arity: [2, 2],
  options: {
    ...scopeOptions,
    'from-file': { type: 'string' },
    stdin: { type: 'boolean' },
    'generate-bytes': { type: 'string' },
    ...followOptions,
  },
  async run(ctx) {
    const isSupplied =
      booleanFlag(ctx.flags, 'stdin') || stringFlag(ctx.flags, 'from-file') !== undefined;
    const generateBytes = integerFlag(ctx.flags, 'generate-bytes', 16, 1024);
    if (isSupplied && generateBytes !== undefined)
      throw new UsageError('either supply a value or --generate-bytes, not both');
    const input = isSupplied
      ? { valueBase64: (await readValue(ctx)).toString('base64') }
      : { generateBytes: generateBytes ?? 32 };
    const timeoutMs = followTimeoutMs(ctx);
    const client = await ctx.client();
    const accepted = await client.rotateSecret(await scopeOf(ctx, client), arg(ctx, 1), input);
    if (!booleanFlag(ctx.flags, 'follow')) {
      ctx.out.result(accepted, () => `rotation ${accepted.id} ${accepted.status}`);
      return EXIT.OK;
    }
    return followRotation(ctx, client, accepted.id, timeoutMs);
  },
};

/** Polls a rotation to its end: succeeded (0), rolled back (30) or still running at the timeout (40). */
async function followRotation(
  ctx: CommandContext,
  client: ApiClient,
  id: string,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const rotation = await client.getRotation(id);
    if (rotation.state !== last) ctx.out.progress(`rotation ${id}: ${rotation.state}`);
    last = rotation.state;
    if (rotation.state === 'succeeded' || rotation.state === 'rolled_back') {
      ctx.out.result(rotation, () => describeRotation(rotation));
      return rotation.state === 'succeeded' ? EXIT.OK : EXIT.DEPLOY_FAILED;
    }
    if (Date.now() > deadline || ctx.io.signal?.aborted === true) {
      ctx.out.progress(`timed out; rotation ${id} is still ${rotation.state}`);
      return EXIT.TIMEOUT;
    }
    await sleep(ctx.io.pollIntervalMs ?? 1_000, ctx.io.signal);
  }
}

function describeRotation(rotation: RotationResponse): string {
  return formatFields([
    ['rotation', rotation.id],
    ['state', rotation.state],
    ['versions', `${rotation.previousVersion ?? '-'} → ${rotation.newVersion ?? '-'}`],
    ['deployments', rotation.targets.length],
    ['reason', rotation.failureReason],
  ]);
}

export const secrets: CommandGroup = {
  name: 'secrets',
  summary:
    'versioned, encrypted secrets (on the server: `secrets rewrap` after a master key change)',
  subcommands: [list, set, get, versions, rotate, rollback],
};
