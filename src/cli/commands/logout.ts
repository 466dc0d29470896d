import { ApiClient, ApiError } from '../client.js';
import { EXIT, type Command } from '../context.js';
import { findCredentials, saveCredentials, storedTokenSource } from '../credentials.js';

export const logout: Command = {
  name: 'logout',
  summary: 'revoke the stored session and forget its tokens',
  synopsis: '',
  arity: [0, 0],
  options: {},
  async run(ctx) {
    const path = ctx.credentialsPath;
    const stored = await findCredentials(path);
    if (stored?.accessToken === undefined) {
      ctx.out.progress('not logged in');
      return EXIT.OK;
    }

    let failure: unknown;
    try {
      await new ApiClient(stored.apiUrl, storedTokenSource(path, stored)).logout();
    } catch (error) {
      // A session the server already refuses is as good as revoked.
      if (!(error instanceof ApiError && error.status === 401)) failure = error;
    }
    const { apiUrl, email } = stored;
    await saveCredentials(path, { apiUrl, ...(email === undefined ? {} : { email }) });

    if (failure !== undefined) {
      const reason = failure instanceof Error ? failure.message : String(failure);
      ctx.out.progress(
        `forgot the local tokens, but the server did not revoke the session: ${reason}`,
      );
      return EXIT.FAILURE;
    }
    ctx.out.result({ apiUrl, loggedOut: true }, () => `logged out of ${apiUrl}`);
    return EXIT.OK;
  },
};
