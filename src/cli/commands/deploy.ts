import type { AcceptedResponse, ApiClient, DeploymentResponse } from '../client.js';
import {
  booleanFlag,
  EXIT,
  integerFlag,
  requireFlag,
  requireId,
  resolveServiceId,
  serviceArg,
  sleep,
  stringFlag,
  type Command,
  type CommandContext,
} from '../context.js';
import { sanitize } from '../output.js';

const DEFAULT_TIMEOUT_SECONDS = 300;
const FAILED = new Set(['failed', 'cancelled', 'superseded']);

export const followOptions = {
  follow: { type: 'boolean' },
  'timeout-seconds': { type: 'string' },
} as const;

export const deploy: Command = {
  name: 'deploy',
  summary: 'deploy a release (the latest by default) to an environment',
  synopsis:
    '<service> --env <environment> [--release <id>] [--replicas <n>] [--follow] [--timeout-seconds <s>]',
  arity: [1, 1],
  options: {
    env: { type: 'string' },
    release: { type: 'string' },
    replicas: { type: 'string' },
    ...followOptions,
  },
  async run(ctx) {
    const environment = requireFlag(ctx.flags, 'env');
    const release = stringFlag(ctx.flags, 'release');
    const releaseId = release === undefined ? undefined : requireId(release, '--release');
    const replicas = integerFlag(ctx.flags, 'replicas', 0, 20);
    const timeoutMs = followTimeoutMs(ctx);
    const service = serviceArg(ctx, 0);
    const client = await ctx.client();
    const serviceId = await resolveServiceId(client, service);

    const accepted = await client.createDeployment(serviceId, {
      environment,
      ...(releaseId === undefined ? {} : { releaseId }),
      ...(replicas === undefined ? {} : { replicas }),
    });
    return finishDeployment(ctx, client, accepted, { serviceId, environment, timeoutMs });
  },
};

/** `--timeout-seconds` in milliseconds; read before anything is started. */
export function followTimeoutMs(ctx: CommandContext): number {
  return (integerFlag(ctx.flags, 'timeout-seconds', 1, 86_400) ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
}

/**
 * Reports a started deployment: its id at once, or with `--follow` each status change
 * until it is live (0), failed (30) or the timeout passes (40).
 */
export async function finishDeployment(
  ctx: CommandContext,
  client: ApiClient,
  accepted: AcceptedResponse,
  target: { serviceId: string; environment: string; timeoutMs: number },
): Promise<number> {
  if (!booleanFlag(ctx.flags, 'follow')) {
    ctx.out.result(accepted, () => `deployment ${accepted.id} ${accepted.status}`);
    return EXIT.OK;
  }

  ctx.out.progress(`deployment ${accepted.id}: ${accepted.status}`);
  const outcome = await pollDeployment(ctx, client, accepted, target.timeoutMs);
  if (outcome.kind === 'timeout') {
    const waited = `${Math.round(target.timeoutMs / 1000)}s`;
    ctx.out.progress(
      `timed out after ${waited}; deployment ${accepted.id} is still ${outcome.deployment.status}`,
    );
    return EXIT.TIMEOUT;
  }
  const { deployment } = outcome;
  if (deployment.status !== 'live') {
    const reason = sanitize(deployment.failureReason ?? 'no reason given');
    ctx.out.result(deployment, () => `deployment ${deployment.id} ${deployment.status}: ${reason}`);
    return EXIT.DEPLOY_FAILED;
  }

  const url = await client.serviceStatus(target.serviceId, target.environment).then(
    (status) => status.url,
    () => undefined,
  );
  ctx.out.result({ ...deployment, url: url ?? null }, () => {
    return `deployment ${deployment.id} is live${url === undefined ? '' : ` at ${url}`}`;
  });
  return EXIT.OK;
}

type PollOutcome =
  | { kind: 'settled'; deployment: DeploymentResponse }
  | { kind: 'timeout'; deployment: DeploymentResponse | AcceptedResponse };

async function pollDeployment(
  ctx: CommandContext,
  client: ApiClient,
  accepted: AcceptedResponse,
  timeoutMs: number,
): Promise<PollOutcome> {
  const deadline = Date.now() + timeoutMs;
  const interval = ctx.io.pollIntervalMs ?? 1000;
  let last: DeploymentResponse | AcceptedResponse = accepted;
  while (ctx.io.signal?.aborted !== true) {
    const deployment = await client.getDeployment(accepted.id);
    if (deployment.status !== last.status)
      ctx.out.progress(`deployment ${deployment.id}: ${deployment.status}`);
    last = deployment;
    if (deployment.status === 'live' || FAILED.has(deployment.status))
      return { kind: 'settled', deployment };

    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await sleep(Math.min(interval, remaining), ctx.io.signal);
  }
  return { kind: 'timeout', deployment: last };
}
