import type { ServiceStatusResponse } from '../client.js';
import { requireFlag, resolveServiceId, serviceArg, type Command } from '../context.js';
import { formatFields, formatTime, shortSha } from '../output.js';

export const status: Command = {
  name: 'status',
  summary: 'what is live in an environment, whether it is healthy, since when, and its URL',
  synopsis: '<service> --env <environment>',
  arity: [1, 1],
  options: { env: { type: 'string' } },
  async run(ctx) {
    const environment = requireFlag(ctx.flags, 'env');
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);
    const result = await client.serviceStatus(serviceId, environment);
    ctx.out.result(result, () => describeStatus(result));
  },
};

function describeStatus(status: ServiceStatusResponse): string {
  const { release, deployment } = status;
  const states = status.instances.map((instance) => instance.state).join(', ');
  return formatFields([
    ['environment', status.environment],
    ['live', status.isLive ? `yes, since ${formatTime(status.liveSince)}` : 'no'],
    ['healthy', status.isHealthy],
    [
      'release',
      release === null
        ? null
        : `v${release.version} (commit ${shortSha(release.commitSha)}, ${release.id})`,
    ],
    ['deployment', deployment === null ? null : `${deployment.id} (${deployment.status})`],
    ['instances', `${status.instances.length}${states === '' ? '' : `: ${states}`}`],
    ['url', status.url],
  ]);
}
