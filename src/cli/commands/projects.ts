import type { ProjectResponse } from '../client.js';
import {
  arg,
  hintNextPage,
  pageOptions,
  pageQuery,
  stringFlag,
  type Command,
  type CommandGroup,
} from '../context.js';
import { formatFields, formatTable, formatTime } from '../output.js';

const create: Command = {
  name: 'projects create',
  summary: 'create a project (with development, staging and production environments)',
  synopsis: '<name> [--slug <slug>]',
  arity: [1, 1],
  options: { slug: { type: 'string' } },
  async run(ctx) {
    const slug = stringFlag(ctx.flags, 'slug');
    const client = await ctx.client();
    const project = await client.createProject({ name: arg(ctx, 0), ...(slug ? { slug } : {}) });
    ctx.out.result(project, () => describeProject(project));
  },
};

const list: Command = {
  name: 'projects list',
  summary: 'list the projects you can see',
  synopsis: '[--limit <n>] [--cursor <cursor>]',
  arity: [0, 0],
  options: pageOptions,
  async run(ctx) {
    const client = await ctx.client();
    const page = await client.listProjects(pageQuery(ctx.flags));
    ctx.out.result(page, () =>
      formatTable(
        [
          { header: 'SLUG', value: (p: ProjectResponse) => p.slug },
          { header: 'NAME', value: (p) => p.name },
          { header: 'STATUS', value: (p) => p.status },
          { header: 'CREATED', value: (p) => formatTime(p.createdAt) },
          { header: 'ID', value: (p) => p.id },
        ],
        page.data,
      ),
    );
    hintNextPage(ctx, page, 'projects list');
  },
};

const get: Command = {
  name: 'projects get',
  summary: 'show one project and its environments',
  synopsis: '<project>',
  arity: [1, 1],
  options: {},
  async run(ctx) {
    const client = await ctx.client();
    const project = await client.getProject(arg(ctx, 0));
    const environments = await client.listEnvironments(project.id, { limit: 100 });
    const names = environments.data.map((environment) => environment.name).join(', ');
    ctx.out.result(
      project,
      () => `${describeProject(project)}\n${formatFields([['environments', names]])}`,
    );
  },
};

export const projects: CommandGroup = {
  name: 'projects',
  summary: 'create, list and show projects',
  subcommands: [create, list, get],
};

function describeProject(project: ProjectResponse): string {
  return formatFields([
    ['slug', project.slug],
    ['name', project.name],
    ['id', project.id],
    ['status', project.status],
    ['created', formatTime(project.createdAt)],
  ]);
}
