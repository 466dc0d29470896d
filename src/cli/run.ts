/**
 * The client half of the `switchyard` executable: finds the command in argv, parses its
 * flags with util.parseArgs, runs it, and turns any failure into a message on stderr and
 * an exit code. main.ts calls runCli; tests call it in-process with their own io.
 */
import { parseArgs } from 'node:util';
import { ApiError, ApiUnreachableError } from './client.js';
import {
  CliError,
  createContext,
  EXIT,
  UsageError,
  type CliIo,
  type Command,
  type CommandGroup,
  type Flags,
  type OptionsConfig,
} from './context.js';
import { createOutput, type Writer } from './output.js';
import { audit } from './commands/audit.js';
import { builds } from './commands/builds.js';
import { deploy } from './commands/deploy.js';
import { env } from './commands/env.js';
import { login } from './commands/login.js';
import { logout } from './commands/logout.js';
import { logs } from './commands/logs.js';
import { projects } from './commands/projects.js';
import { register } from './commands/register.js';
import { releases } from './commands/releases.js';
import { rollback } from './commands/rollback.js';
import { secrets } from './commands/secrets.js';
import { services } from './commands/services.js';
import { status } from './commands/status.js';
import { verify } from './commands/verify.js';
import { whoami } from './commands/whoami.js';

const GLOBAL_OPTIONS = {
  json: { type: 'boolean' },
  api: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionsConfig;

const COMMANDS: Array<Command | CommandGroup> = [
  register,
  verify,
  login,
  logout,
  whoami,
  projects,
  services,
  env,
  builds,
  releases,
  deploy,
  rollback,
  status,
  logs,
  secrets,
  audit,
];

const GLOBAL_HELP = `global options:
  --json           results as JSON on stdout (progress and errors stay on stderr)
  --api <url>      the API to call (else SWITCHYARD_API_URL, the one logged in to, or ${'http://127.0.0.1:8080'})
  --token <token>  a bearer token instead of the stored session (or SWITCHYARD_TOKEN)
  -h, --help       show the usage of a command`;

const EXIT_HELP = `exit codes:
  0 ok, 1 other failure, 2 usage, 10 refused by the API (validation, not found, conflict),
  20 build failed, 30 deploy failed, 40 timed out, 50 authentication`;

/** Runs one command line and resolves to its exit code; it never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let command: Command | undefined;
  try {
    const found = findCommand(argv);
    if (found.kind === 'help') {
      io.stdout.write(found.text);
      return EXIT.OK;
    }
    command = found.command;
    return await runCommand(found.command, found.rest, io);
  } catch (error) {
    return report(error, io.stderr, command);
  }
}

type Found = { kind: 'help'; text: string } | { kind: 'run'; command: Command; rest: string[] };

/** The command named by the leading positionals (`deploy`, `services create`), or help. */
function findCommand(argv: string[]): Found {
  const { tokens } = parseArgs({
    args: argv,
    options: GLOBAL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const positionals = tokens.filter((token) => token.kind === 'positional');
  const wantsHelp = tokens.some((token) => token.kind === 'option' && token.name === 'help');
  const [first, second] = positionals;

  if (first === undefined || first.value === 'help') {
    return {
      kind: 'help',
      text: second === undefined ? generalUsage() : usageOf(lookup(second.value)),
    };
  }
  const entry = lookup(first.value);
  const consumed = [first.index];
  let command: Command;
  if ('subcommands' in entry) {
    const sub = entry.subcommands.find((c) => c.name === `${entry.name} ${second?.value ?? ''}`);
    if (sub === undefined || second === undefined) {
      if (wantsHelp && second === undefined) return { kind: 'help', text: usageOf(entry) };
      const message =
        second === undefined
          ? `${entry.name}: which one?`
          : `unknown command "${entry.name} ${second.value}"`;
      throw new UsageError(`${message}\n\n${usageOf(entry)}`);
    }
    consumed.push(second.index);
    command = sub;
  } else {
    command = entry;
  }
  if (wantsHelp) return { kind: 'help', text: usageOf(command) };
  return { kind: 'run', command, rest: argv.filter((_, index) => !consumed.includes(index)) };
}

function lookup(name: string): Command | CommandGroup {
  const entry = COMMANDS.find((candidate) => candidate.name === name);
  if (entry === undefined) {
    throw new UsageError(`unknown command "${name}"; run \`switchyard help\` for the list`);
  }
  return entry;
}

async function runCommand(command: Command, rest: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(command, rest);
  const [min, max] = command.arity;
  if (positionals.length < min || positionals.length > max) {
    const expected =
      min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw new UsageError(`expected ${expected} argument(s), got ${positionals.length}`);
  }
  const out = createOutput(io.stdout, io.stderr, values['json'] === true);
  const code = await command.run(createContext(io, out, positionals, values));
  return code ?? EXIT.OK;
}

function parseFlags(command: Command, rest: string[]): { values: Flags; positionals: string[] } {
  const isPasswordFlag = (token: string) =>
    token === '--password' || token.startsWith('--password=');
  if ('password-stdin' in command.options && rest.some(isPasswordFlag)) {
    throw new UsageError(
      'passwords are never flags: pipe one in with --password-stdin, or type it at the prompt',
    );
  }
  try {
    return parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    if (
      error instanceof TypeError &&
      'code' in error &&
      String(error.code).startsWith('ERR_PARSE_ARGS')
    ) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

/** Prints the failure on stderr and chooses the exit code. */
function report(error: unknown, stderr: Writer, command: Command | undefined): number {
  if (error instanceof UsageError) {
    const usage =
      command === undefined ? '' : `\nusage: switchyard ${command.name} ${command.synopsis}\n`;
    stderr.write(`switchyard: ${error.message}\n${usage}`);
    return EXIT.USAGE;
  }
  if (error instanceof ApiError) {
    const requestId = error.requestId === undefined ? '' : ` (request id ${error.requestId})`;
    stderr.write(
      `switchyard: ${error.code}: ${error.message}${requestId}\n${detailLines(error.details)}`,
    );
    if (error.status === 401)
      stderr.write('hint: run `switchyard login` (or check SWITCHYARD_TOKEN)\n');
    return exitCodeForStatus(error.status);
  }
  if (error instanceof CliError) {
    stderr.write(
      `switchyard: ${error.code === undefined ? '' : `${error.code}: `}${error.message}\n`,
    );
    return error.exitCode;
  }
  const message =
    error instanceof ApiUnreachableError || error instanceof Error ? error.message : String(error);
  stderr.write(`switchyard: ${message}\n`);
  return EXIT.FAILURE;
}

/** 401 is authentication; other refusals a person must fix are validation (10). */
export function exitCodeForStatus(status: number): number {
  if (status === 401) return EXIT.AUTHENTICATION;
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return EXIT.VALIDATION;
  return EXIT.FAILURE;
}

function detailLines(details: unknown): string {
  if (!Array.isArray(details)) return '';
  return details
    .map((detail: unknown) => {
      if (typeof detail !== 'object' || detail === null) return '';
      const { path, field, message } = detail as Record<string, unknown>;
      const where = [path, field].filter((part) => typeof part === 'string').join(' ');
      return typeof message === 'string' ? `  ${where === '' ? '' : `${where}: `}${message}\n` : '';
    })
    .join('');
}

function generalUsage(): string {
  const width = Math.max(...COMMANDS.map((entry) => entry.name.length));
  const lines = COMMANDS.map((entry) => `  ${entry.name.padEnd(width)}  ${entry.summary}`);
  return [
    'usage: switchyard <command> [options]',
    '',
    'client commands:',
    ...lines,
    '',
    'server commands:',
    `  ${'serve'.padEnd(width)}  run the API, workers and router (configured by environment variables)`,
    `  ${'migrate'.padEnd(width)}  apply database migrations and exit`,
    '',
    GLOBAL_HELP,
    '',
    EXIT_HELP,
    '',
    'Run `switchyard <command> --help` for the options of one command.',
    '',
  ].join('\n');
}

function usageOf(entry: Command | CommandGroup): string {
  if (!('subcommands' in entry)) {
    return `usage: switchyard ${entry.name} ${entry.synopsis}\n\n${entry.summary}\n\n${GLOBAL_HELP}\n`;
  }
  const lines = entry.subcommands.map(
    (sub) => `  switchyard ${sub.name} ${sub.synopsis}\n      ${sub.summary}`,
  );
  return `usage:\n${lines.join('\n')}\n\n${GLOBAL_HELP}\n`;
}
