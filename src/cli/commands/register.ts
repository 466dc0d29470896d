import { ApiClient, ApiError } from '../client.js';
import { requireFlag, type Command } from '../context.js';
import { credentialsFromTokens, saveCredentials } from '../credentials.js';
import { readPassword } from '../input.js';

export const register: Command = {
  name: 'register',
  summary: 'sign up, then sign in (or, with email verification, wait for the token)',
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
    // The server answers alike whether or not the address has an account.
    const accepted = await anonymous.register({ email, password, name });
    if (accepted.next === 'verify_email') {
      ctx.out.result({ apiUrl, email, next: accepted.next, signedIn: false }, () =>
        [
          `signed up ${email} at ${apiUrl}; a verification token is on its way to that address.`,
          'Redeem it with `switchyard verify`, then `switchyard login`.',
        ].join('\n'),
      );
      return;
    }

    const tokens = await anonymous.login({ email, password }).catch((error: unknown) => {
      if (!(error instanceof ApiError) || error.code !== 'AUTHENTICATION_FAILED') throw error;
      throw new ApiError(
        error.code,
        'signed up, but could not sign in: if the address already had an account, sign in with its password (`switchyard login`)',
        error.status,
        error.requestId,
      );
    });
    await saveCredentials(ctx.credentialsPath, credentialsFromTokens(apiUrl, email, tokens));
    const user = await new ApiClient(apiUrl, {
      token: async () => tokens.accessToken,
    }).me();
    ctx.out.result({ apiUrl, email, next: accepted.next, signedIn: true, user }, () => {
      const role = user.isInstanceAdmin ? ' (instance admin: the first account)' : '';
      return `registered ${user.email}${role} and logged in to ${apiUrl}`;
    });
  },
};
