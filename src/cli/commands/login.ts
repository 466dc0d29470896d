import { ApiClient } from '../client.js';
import { requireFlag, type Command } from '../context.js';
import { credentialsFromTokens, saveCredentials } from '../credentials.js';
import { readPassword } from '../input.js';

export const login: Command = {
  name: 'login',
  summary: 'sign in and store the session for later commands',
  synopsis: '--email <email> [--api <url>] [--password-stdin]',
  arity: [0, 0],
  options: { email: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
  async run(ctx) {
    const email = requireFlag(ctx.flags, 'email');
    const apiUrl = await ctx.apiUrl();
    const password = await readPassword(ctx, { confirm: false });

    const tokens = await new ApiClient(apiUrl).login({ email, password });
    await saveCredentials(ctx.credentialsPath, credentialsFromTokens(apiUrl, email, tokens));
    ctx.out.result({ apiUrl, email }, () => `logged in to ${apiUrl} as ${email}`);
  },
};
