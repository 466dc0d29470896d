import type { ReleaseResponse } from '../client.js';
import {
  hintNextPage,
  pageOptions,
  pageQuery,
  resolveServiceId,
  serviceArg,
  type Command,
  type CommandGroup,
} from '../context.js';
import { formatTable, formatTime, shortSha } from '../output.js';

const list: Command = {
  name: 'releases list',
  summary: "list a service's releases, newest first",
  synopsis: '<service> [--limit <n>] [--cursor <cursor>]',
  arity: [1, 1],
  options: pageOptions,
  async run(ctx) {
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const page = await client.listReleases(serviceId, pageQuery(ctx.flags));
    ctx.out.result(page, () =>
      formatTable(
        [
          { header: 'VERSION', value: (r: ReleaseResponse) => `v${r.version}` },
          { header: 'COMMIT', value: (r) => shortSha(r.commitSha) },
          { header: 'KIND', value: (r) => r.kind },
          { header: 'CREATED', value: (r) => formatTime(r.createdAt) },
          { header: 'ID', value: (r) => r.id },
        ],
        page.data,
      ),
    );
    hintNextPage(ctx, page, 'releases list');
  },
};

export const releases: CommandGroup = {
  name: 'releases',
  summary: "list a service's releases",
  subcommands: [list],
};
