/**
 * Reading from stdin: whole files piped in, and passwords, which are never flags (they
 * would show in `ps` and shell history). A password comes from `--password-stdin` or
 * from a prompt on a terminal with echo off.
 */
import { booleanFlag, UsageError, type CliInput, type CommandContext } from './context.js';
import type { Writer } from './output.js';

const MAX_STDIN_BYTES = 4 * 1024 * 1024;

/** All of stdin as UTF-8; refuses more than 4 MiB. */
export async function readStdin(stdin: CliInput): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new UsageError('stdin is larger than 4 MiB');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The password for login or register: stdin's first line with `--password-stdin`, else a
 * prompt on the terminal (twice when `confirm`, to catch typos on sign-up).
 */
export async function readPassword(
  ctx: CommandContext,
  options: { confirm: boolean },
): Promise<string> {
  if (booleanFlag(ctx.flags, 'password-stdin')) {
    const password = (await readStdin(ctx.io.stdin)).replace(/\r?\n$/, '');
    if (password === '') throw new UsageError('--password-stdin: stdin is empty');
    return password;
  }
  const { stdin, stderr } = ctx.io;
  if (stdin.isTTY !== true || stdin.setRawMode === undefined) {
    throw new UsageError(
      'no terminal to ask for the password on: pipe it in with --password-stdin',
    );
  }
  const password = await promptHidden(stdin, stderr, 'Password: ');
  if (password === '') throw new UsageError('the password is empty');
  if (options.confirm && (await promptHidden(stdin, stderr, 'Repeat password: ')) !== password) {
    throw new UsageError('the passwords do not match');
  }
  return password;
}

/** Reads one line from a terminal in raw mode, echoing nothing. Ctrl-C and Ctrl-D abort. */
export function promptHidden(stdin: CliInput, stderr: Writer, prompt: string): Promise<string> {
  stderr.write(prompt);
  stdin.setRawMode?.(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const finish = (error: Error | undefined) => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
      if (error === undefined) resolve(typed);
      else reject(error);
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString()) {
        if (char === '\r' || char === '\n') return finish(undefined);
        if (char === '\u0003' || char === '\u0004') return finish(new UsageError('cancelled'));
        if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += char;
      }
    };
    stdin.on('data', onData);
  });
}
