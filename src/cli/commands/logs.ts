import type { ApiClient, DeploymentLogsResponse } from '../client.js';
import {
  booleanFlag,
  CliError,
  EXIT,
  integerFlag,
  requireFlag,
  requireId,
  resolveServiceId,
  serviceArg,
  stringFlag,
  UsageError,
  type Command,
  type CommandContext,
} from '../context.js';
import { sanitize } from '../output.js';

type LogLine = DeploymentLogsResponse['lines'][number];

export const logs: Command = {
  name: 'logs',
  summary: "print the live deployment's output (or one deployment's); -f follows it",
  synopsis:
    '<service> --env <environment> [-f|--follow] [--tail <n>]\n       switchyard logs --deployment <id> [-f|--follow] [--tail <n>]',
  arity: [0, 1],
  options: {
    env: { type: 'string' },
    deployment: { type: 'string' },
    follow: { type: 'boolean', short: 'f' },
    tail: { type: 'string' },
  },
  async run(ctx) {
    const tail = integerFlag(ctx.flags, 'tail', 1, 10_000);
    const target = parseTarget(ctx);
    const client = await ctx.client();
    const deploymentId =
      'deploymentId' in target ? target.deploymentId : await liveDeployment(client, target);

    if (!booleanFlag(ctx.flags, 'follow')) {
      const result = await client.deploymentLogs(deploymentId, tail);
      ctx.out.result(result, () => result.lines.map(formatLine).join('\n'));
      return EXIT.OK;
    }
    for await (const event of client.followDeploymentLogs(deploymentId, tail, ctx.io.signal)) {
      if (event.event !== 'log' || !isLogLine(event.data)) continue;
      ctx.out.line(ctx.out.isJson ? JSON.stringify(event.data) : formatLine(event.data));
    }
    return EXIT.OK;
  },
};

type Target = { deploymentId: string } | { service: string; environment: string };

/** `--deployment <id>`, or a service and `--env` whose live deployment is meant. */
function parseTarget(ctx: CommandContext): Target {
  const deploymentId = stringFlag(ctx.flags, 'deployment');
  const service = ctx.args[0];
  if (deploymentId !== undefined && service !== undefined) {
    throw new UsageError('give a service or --deployment <id>, not both');
  }
  if (deploymentId !== undefined) return { deploymentId: requireId(deploymentId, '--deployment') };
  if (service === undefined)
    throw new UsageError('name a service (with --env) or give --deployment <id>');
  return { service: serviceArg(ctx, 0), environment: requireFlag(ctx.flags, 'env') };
}

async function liveDeployment(
  client: ApiClient,
  target: { service: string; environment: string },
): Promise<string> {
  const serviceId = await resolveServiceId(client, target.service);
  const status = await client.serviceStatus(serviceId, target.environment);
  if (status.deployment === null) {
    throw new CliError(
      `nothing is live in ${target.environment}`,
      EXIT.VALIDATION,
      'DEPLOYMENT_NOT_FOUND',
    );
  }
  return status.deployment.id;
}

function formatLine(line: LogLine): string {
  return `${line.at} ${line.instanceId}${line.stream === 'stderr' ? ' (stderr)' : ''}: ${sanitize(line.line)}`;
}

function isLogLine(data: unknown): data is LogLine {
  if (typeof data !== 'object' || data === null) return false;
  const { at, instanceId, stream, line } = data as Record<string, unknown>;
  return [at, instanceId, stream, line].every((value) => typeof value === 'string');
}
