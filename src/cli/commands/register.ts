import { ApiClient } from '../client.js';
import { requireFlag, type Command } from '../context.js';
import { credentialsFromTokens, saveCredentials } from '../credentials.js';
import { readPassword } from '../input.js';

export const register: Command = {
  name: 'register',
  summary: 'create an account, then sign in with it',
  synopsis: '--email <email> --name <name> [--api <url>] [--password-stdin]',
  arity: [0, 0],
  options: {
    email: { type: 'string' },
    name: { type: 'string' },
    'password-stdin': { type: 'boolean' },
  },
  async run(ctx) {
    const email = requireFlag(ctx.flags, 'email');
    const name = requireFlag(ctx.flags, 'name');
    const apiUrl = await ctx.apiUrl();
    const password = await readPassword(ctx, { confirm: true });

    const anonymous = new ApiClient(apiUrl);
    const user = await anonymous.register({ email, password, name });
    const tokens = await anonymous.login({ email, password });
    await saveCredentials(ctx.credentialsPath, credentialsFromTokens(apiUrl, email, tokens));

    ctx.out.result(user, () => {
      const role = user.isInstanceAdmin ? ' (instance admin: the first account)' : '';
      return `registered ${user.email}${role} and logged in to ${apiUrl}`;
    });
  },
};
