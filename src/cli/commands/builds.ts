import type { ApiClient, BuildResponse } from '../client.js';
import {
  arg,
  booleanFlag,
  EXIT,
  hintNextPage,
  pageOptions,
  pageQuery,
  requireId,
  resolveServiceId,
  serviceArg,
  sleep,
  stringFlag,
  type Command,
  type CommandContext,
  type CommandGroup,
} from '../context.js';
import { formatTable, formatTime, sanitize, shortSha } from '../output.js';

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);
const MAX_RECONNECTS = 5;

const create: Command = {
  name: 'builds create',
  summary: 'build a ref of the service (its branch by default) into a release',
  synopsis: '<service> [--ref <ref>] [--follow]',
  arity: [1, 1],
  options: { ref: { type: 'string' }, follow: { type: 'boolean' } },
  async run(ctx) {
    const ref = stringFlag(ctx.flags, 'ref');
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const accepted = await client.createBuild(serviceId, ref === undefined ? {} : { ref });

    if (!booleanFlag(ctx.flags, 'follow')) {
      ctx.out.result(accepted, () => `build ${accepted.id} ${accepted.status}`);
      ctx.out.progress(`follow it with: switchyard builds logs ${accepted.id} --follow`);
      return EXIT.OK;
    }
    ctx.out.progress(`build ${accepted.id} ${accepted.status}; following its log`);
    const build = await followBuild(ctx, client, accepted.id, (line) =>
      ctx.out.progress(sanitize(line)),
    );
    ctx.out.result(build, () => describeOutcome(build));
    return exitCodeFor(build);
  },
};

const list: Command = {
  name: 'builds list',
  summary: "list a service's builds, newest first",
  synopsis: '<service> [--limit <n>] [--cursor <cursor>]',
  arity: [1, 1],
  options: pageOptions,
  async run(ctx) {
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const page = await client.listBuilds(serviceId, pageQuery(ctx.flags));
    ctx.out.result(page, () =>
      formatTable(
        [
          { header: 'ID', value: (b: BuildResponse) => b.id },
          { header: 'STATUS', value: (b) => b.status },
          { header: 'REF', value: (b) => b.ref },
          { header: 'COMMIT', value: (b) => shortSha(b.commitSha) },
          { header: 'CREATED', value: (b) => formatTime(b.createdAt) },
          { header: 'RELEASE', value: (b) => b.releaseId },
        ],
        page.data,
      ),
    );
    hintNextPage(ctx, page, 'builds list');
  },
};

const logs: Command = {
  name: 'builds logs',
  summary: "print a build's log; --follow streams it until the build ends",
  synopsis: '<build-id> [--follow]',
  arity: [1, 1],
  options: { follow: { type: 'boolean' } },
  async run(ctx) {
    const buildId = requireId(arg(ctx, 0), 'the build');
    const client = await ctx.client();
    if (!booleanFlag(ctx.flags, 'follow')) {
      const result = await client.buildLogs(buildId);
      ctx.out.result(result, () => result.lines.map((entry) => sanitize(entry.line)).join('\n'));
      return EXIT.OK;
    }

    const build = await followBuild(ctx, client, buildId, (line, seq) => {
      ctx.out.line(ctx.out.isJson ? JSON.stringify({ event: 'log', seq, line }) : sanitize(line));
    });
    if (ctx.out.isJson) ctx.out.line(JSON.stringify({ event: 'end', build }));
    else ctx.out.progress(describeOutcome(build));
    return exitCodeFor(build);
  },
};

export const builds: CommandGroup = {
  name: 'builds',
  summary: 'start builds, list them and read their logs',
  subcommands: [create, list, logs],
};

/**
 * Streams a build's log lines to `onLine` until the build finishes, and returns the
 * finished build. A dropped stream is reopened; lines already seen are skipped by `seq`.
 * When the caller's signal aborts, returns the build as it stands.
 */
async function followBuild(
  ctx: CommandContext,
  client: ApiClient,
  buildId: string,
  onLine: (line: string, seq: number) => void,
): Promise<BuildResponse> {
  const signal = ctx.io.signal;
  const isStopped = () => signal?.aborted === true;
  let lastSeq = -1;
  for (let attempt = 0; attempt <= MAX_RECONNECTS && !isStopped(); attempt++) {
    if (attempt > 0) {
      ctx.out.progress('the log stream closed early; reconnecting');
      await sleep(1000, signal);
    }
    for await (const event of client.followBuildLogs(buildId, signal)) {
      // The end event's build lacks its release id; the build resource has it.
      if (event.event === 'end') return client.getBuild(buildId);
      if (event.event !== 'log' || !isLogLine(event.data) || event.data.seq <= lastSeq) continue;
      lastSeq = event.data.seq;
      onLine(event.data.line, event.data.seq);
    }
  }
  return client.getBuild(buildId);
}

function exitCodeFor(build: BuildResponse): number {
  if (build.status === 'succeeded') return EXIT.OK;
  return FINISHED.has(build.status) ? EXIT.BUILD_FAILED : EXIT.FAILURE;
}

function describeOutcome(build: BuildResponse): string {
  switch (build.status) {
    case 'succeeded':
      return `build ${build.id} succeeded: release ${build.releaseId ?? '-'} from commit ${shortSha(build.commitSha)}`;
    case 'failed':
    case 'cancelled':
      return `build ${build.id} ${build.status}: ${build.failureReason ?? 'no reason given'}`;
    default:
      return `stopped following build ${build.id}; it is still ${build.status}`;
  }
}

function isLogLine(data: unknown): data is { seq: number; line: string } {
  if (typeof data !== 'object' || data === null) return false;
  const { seq, line } = data as Record<string, unknown>;
  return typeof seq === 'number' && typeof line === 'string';
}
