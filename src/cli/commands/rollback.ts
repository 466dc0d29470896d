import {
  requireFlag,
  requireId,
  resolveServiceId,
  serviceArg,
  stringFlag,
  type Command,
} from '../context.js';
import { finishDeployment, followOptions, followTimeoutMs } from './deploy.js';

export const rollback: Command = {
  name: 'rollback',
  summary: 'return an environment to an earlier release (the previous one by default)',
  synopsis: '<service> --env <environment> [--release <id>] [--follow] [--timeout-seconds <s>]',
  arity: [1, 1],
  options: { env: { type: 'string' }, release: { type: 'string' }, ...followOptions },
  async run(ctx) {
    const environment = requireFlag(ctx.flags, 'env');
    const release = stringFlag(ctx.flags, 'release');
    const releaseId = release === undefined ? undefined : requireId(release, '--release');
    const timeoutMs = followTimeoutMs(ctx);
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);

    const accepted = await client.rollback(serviceId, {
      environment,
      ...(releaseId === undefined ? {} : { releaseId }),
    });
    return finishDeployment(ctx, client, accepted, { serviceId, environment, timeoutMs });
  },
};
