import type { CreateServiceInput, ServiceResponse } from '../client.js';
import {
  arg,
  hintNextPage,
  integerFlag,
  pageOptions,
  pageQuery,
  requireFlag,
  resolveServiceId,
  serviceArg,
  stringFlag,
  type Command,
  type CommandGroup,
} from '../context.js';
import { formatFields, formatTable, formatTime } from '../output.js';

const create: Command = {
  name: 'services create',
  summary: 'add a service built from a git repository',
  synopsis:
    '<project> <name> --git <url> [--branch <branch>] [--health-path <path>] [--instances <n>]',
  arity: [2, 2],
  options: {
    git: { type: 'string' },
    branch: { type: 'string' },
    'health-path': { type: 'string' },
    instances: { type: 'string' },
  },
  async run(ctx) {
    const input: CreateServiceInput = { name: arg(ctx, 1), gitUrl: requireFlag(ctx.flags, 'git') };
    const branch = stringFlag(ctx.flags, 'branch');
    if (branch !== undefined) input.branch = branch;
    const healthCheckPath = stringFlag(ctx.flags, 'health-path');
    const instances = integerFlag(ctx.flags, 'instances', 0, 20);
    if (healthCheckPath !== undefined || instances !== undefined) {
      input.runtime = {
        ...(healthCheckPath === undefined ? {} : { healthCheckPath }),
        ...(instances === undefined ? {} : { instances }),
      };
    }

    const client = await ctx.client();
    const service = await client.createService(arg(ctx, 0), input);
    ctx.out.result(service, () => describeService(service));
  },
};

const list: Command = {
  name: 'services list',
  summary: "list a project's services",
  synopsis: '<project> [--limit <n>] [--cursor <cursor>]',
  arity: [1, 1],
  options: pageOptions,
  async run(ctx) {
    const client = await ctx.client();
    const page = await client.listServices(arg(ctx, 0), pageQuery(ctx.flags));
    ctx.out.result(page, () =>
      formatTable(
        [
          { header: 'NAME', value: (s: ServiceResponse) => s.name },
          { header: 'BRANCH', value: (s) => s.branch },
          { header: 'INSTANCES', value: (s) => s.runtime.instances },
          { header: 'GIT', value: (s) => s.gitUrl },
          { header: 'ID', value: (s) => s.id },
        ],
        page.data,
      ),
    );
    hintNextPage(ctx, page, 'services list');
  },
};

const get: Command = {
  name: 'services get',
  summary: 'show one service (by id or as <project>/<service>)',
  synopsis: '<service>',
  arity: [1, 1],
  options: {},
  async run(ctx) {
    const ref = serviceArg(ctx, 0);
    const client = await ctx.client();
    const service = await client.getService(await resolveServiceId(client, ref));
    ctx.out.result(service, () => describeService(service));
  },
};

export const services: CommandGroup = {
  name: 'services',
  summary: 'create, list and show services',
  subcommands: [create, list, get],
};

function describeService(service: ServiceResponse): string {
  return formatFields([
    ['name', service.name],
    ['id', service.id],
    ['project id', service.projectId],
    ['git', service.gitUrl],
    ['branch', service.branch],
    ['health path', service.runtime.healthCheckPath],
    ['instances', service.runtime.instances],
    ['port', service.runtime.port],
    ['start command', service.runtime.startCommand ?? service.build.startCommand],
    ['created', formatTime(service.createdAt)],
  ]);
}
