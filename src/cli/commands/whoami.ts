import type { Command } from '../context.js';
import { formatFields, formatTime } from '../output.js';

export const whoami: Command = {
  name: 'whoami',
  summary: 'show the signed-in user',
  synopsis: '',
  arity: [0, 0],
  options: {},
  async run(ctx) {
    const client = await ctx.client();
    const user = await client.me();
    ctx.out.result(user, () =>
      formatFields([
        ['email', user.email],
        ['name', user.name],
        ['id', user.id],
        ['instance admin', user.isInstanceAdmin],
        ['since', formatTime(user.createdAt)],
        ['api', client.baseUrl],
      ]),
    );
  },
};
