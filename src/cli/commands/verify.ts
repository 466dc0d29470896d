import { ApiClient } from '../client.js';
import { booleanFlag, UsageError, type Command } from '../context.js';
import { promptHidden, readStdin } from '../input.js';

export const verify: Command = {
  name: 'verify',
  summary: 'redeem the token mailed at sign-up, which creates the account',
  synopsis: '[--api <url>] [--token-stdin]',
  arity: [0, 0],
  options: { 'token-stdin': { type: 'boolean' } },
  async run(ctx) {
    const apiUrl = await ctx.apiUrl();
    const token = await readToken(ctx);
    const user = await new ApiClient(apiUrl).verify(token);
    ctx.out.result(user, () => {
      const role = user.isInstanceAdmin ? ' (instance admin: the first account)' : '';
      return `verified ${user.email}${role}: sign in with \`switchyard login --email ${user.email}\``;
    });
  },
};

/** The token is a secret: stdin's first line with --token-stdin, else a prompt without echo. */
async function readToken(ctx: Parameters<Command['run']>[0]): Promise<string> {
  if (booleanFlag(ctx.flags, 'token-stdin')) {
    const token = (await readStdin(ctx.io.stdin)).trim();
    if (token === '') throw new UsageError('--token-stdin: stdin is empty');
    return token;
  }
  const { stdin, stderr } = ctx.io;
  if (stdin.isTTY !== true || stdin.setRawMode === undefined) {
    throw new UsageError('no terminal to ask for the token on: pipe it in with --token-stdin');
  }
  const token = (await promptHidden(stdin, stderr, 'Verification token: ')).trim();
  if (token === '') throw new UsageError('the token is empty');
  return token;
}
