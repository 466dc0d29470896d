import { readFile } from 'node:fs/promises';
import { ENV_NAME_PATTERN } from '../../services/dotenv.js';
import type { VariablesResponse } from '../client.js';
import {
  arg,
  CliError,
  EXIT,
  resolveServiceId,
  serviceArg,
  UsageError,
  type Command,
  type CommandGroup,
} from '../context.js';
import { readStdin } from '../input.js';
import type { Output } from '../output.js';

const get: Command = {
  name: 'env get',
  summary: "print a service's configuration variables in .env form",
  synopsis: '<service>',
  arity: [1, 1],
  options: {},
  async run(ctx) {
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const variables = await client.getVariables(await resolveServiceId(client, service));
    ctx.out.result(variables, () => toDotenv(variables.variables));
    if (!ctx.out.isJson && Object.keys(variables.variables).length === 0) {
      ctx.out.progress('no variables set');
    }
  },
};

const set: Command = {
  name: 'env set',
  summary: 'set configuration variables, keeping the others',
  synopsis: '<service> NAME=value [NAME=value ...]',
  arity: [2, Infinity],
  options: {},
  async run(ctx) {
    const assignments = new Map<string, string>();
    for (const [index, assignment] of ctx.args.slice(1).entries()) {
      const [name, value] = parseAssignment(assignment, index + 1);
      assignments.set(name, value);
    }

    // The import endpoint merges on the server, so concurrent sets cannot undo each other.
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const result = await client.importVariables(
      serviceId,
      toDotenv(Object.fromEntries(assignments)),
    );
    reportChange(ctx.out, result, `set ${[...assignments.keys()].join(', ')}`);
  },
};

const importFile: Command = {
  name: 'env import',
  summary: 'merge a .env file (or stdin with -) into the variables',
  synopsis: '<service> <file|->',
  arity: [2, 2],
  options: {},
  async run(ctx) {
    const source = arg(ctx, 1);
    const text = source === '-' ? await readStdin(ctx.io.stdin) : await readText(source);
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const result = await client.importVariables(serviceId, text);
    reportChange(ctx.out, result, `imported ${source === '-' ? 'stdin' : source}`);
  },
};

export const env: CommandGroup = {
  name: 'env',
  summary: "read and change a service's configuration variables",
  subcommands: [get, set, importFile],
};

/**
 * Variables as `.env` text that the import grammar (docs/dotenv.md) reads back byte for
 * byte: every value double-quoted, with backslash, quote, CR, LF and tab escaped.
 */
export function toDotenv(variables: Record<string, string>): string {
  return Object.entries(variables)
    .map(([name, value]) => `${name}="${escapeValue(value)}"\n`)
    .join('');
}

function escapeValue(value: string): string {
  const escapes: Record<string, string> = {
    '\\': '\\\\',
    '"': '\\"',
    '\n': '\\n',
    '\r': '\\r',
    '\t': '\\t',
  };
  return value.replace(/[\\"\n\r\t]/g, (char) => escapes[char] ?? char);
}

// Messages never echo the argument: a mistyped assignment may hold a secret value.
function parseAssignment(assignment: string, position: number): [string, string] {
  const equals = assignment.indexOf('=');
  if (equals === -1) throw new UsageError(`assignment ${position} is not NAME=value`);
  const name = assignment.slice(0, equals);
  if (!ENV_NAME_PATTERN.test(name)) {
    const problem =
      'is not a valid variable name: use letters, digits and _, not starting with a digit';
    throw new UsageError(`assignment ${position}: the name ${problem}`);
  }
  return [name, assignment.slice(equals + 1)];
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CliError(`cannot read ${path}: ${reason}`, EXIT.FAILURE);
  }
}

function reportChange(out: Output, result: VariablesResponse, action: string): void {
  const names = Object.keys(result.variables).sort();
  out.result(
    { names, updatedAt: result.updatedAt },
    () => `${action}; ${names.length} variable${names.length === 1 ? '' : 's'} now set`,
  );
}
