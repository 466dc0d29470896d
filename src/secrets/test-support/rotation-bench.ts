import type { AppInstance } from '../../platform/app.js';
import type { Dependencies } from '../../platform/dependencies.js';
import { eventually, seedProject, seedRelease } from './lockbox-app.js';

type Headers = Record<string, string>;

/** A deployed service whose app reports the variables named in ENV_KEYS. */
export interface DeployedService {
  headers: Headers;
  slug: string;
  serviceId: string;
  releaseId: string;
  deploymentId: string;
}

export async function deployService(
  app: AppInstance,
  deps: Dependencies,
  options: {
    config?: Record<string, string>;
    secrets?: (s: { slug: string; serviceId: string; headers: Headers }) => Promise<void>;
    envKeys: string[];
  },
): Promise<DeployedService> {
  const { owner, slug, serviceId } = await seedProject(app);
  await options.secrets?.({ slug, serviceId, headers: owner.headers });
  const release = await seedRelease(deps, serviceId, owner.id, {
    ENV_KEYS: options.envKeys.join(','),
    ...options.config,
  });
  const deploymentId = await deploy(app, owner.headers, serviceId, release.id);
  return { headers: owner.headers, slug, serviceId, releaseId: release.id, deploymentId };
}

export async function deploy(
  app: AppInstance,
  headers: Headers,
  serviceId: string,
  releaseId: string,
): Promise<string> {
  const created = await app.inject({
    method: 'POST',
    url: `/v1/services/${serviceId}/deployments`,
    headers,
    payload: { environment: 'production', releaseId },
  });
  if (created.statusCode !== 202) throw new Error(`deploy: ${created.body}`);
  const id = created.json<{ id: string }>().id;
  await eventually(`deployment ${id} live`, async () => {
    const status = (await app.inject({ url: `/v1/deployments/${id}`, headers })).json<{
      status: string;
      failureReason: string | null;
    }>();
    if (status.status === 'failed') throw new Error(`deployment failed: ${status.failureReason}`);
    return status.status === 'live' ? true : undefined;
  });
  return id;
}

/** What the live instances of the service in production answer on `/` (their variables). */
export async function liveEnv(
  app: AppInstance,
  deps: Dependencies,
  service: { serviceId: string; headers: Headers },
): Promise<Record<string, string>> {
  const status = (
    await app.inject({
      url: `/v1/services/${service.serviceId}/status?environment=production`,
      headers: service.headers,
    })
  ).json<{
    deployment: { id: string } | null;
  }>();
  const id = status.deployment?.id;
  if (id === undefined || deps.runtime === undefined) throw new Error('nothing live');
  const endpoint = deps.runtime.endpoints(id)[0];
  if (endpoint === undefined) throw new Error(`deployment ${id} has no healthy endpoint`);
  const response = await fetch(`http://127.0.0.1:${endpoint.port}/`);
  return (await response.json()) as Record<string, string>;
}

export interface RotationView {
  state: string;
  failureReason: string | null;
  previousVersion: number | null;
  newVersion: number | null;
  targets: Array<{
    newDeploymentId: string | null;
    restoreDeploymentId: string | null;
    previousDeploymentId: string;
  }>;
}

export async function rotate(
  app: AppInstance,
  headers: Headers,
  url: string,
  body: Record<string, unknown>,
): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: `${url}/rotate`,
    headers,
    payload: body,
  });
  if (response.statusCode !== 202) throw new Error(`rotate: ${response.body}`);
  return response.json<{ id: string }>().id;
}

export async function settled(
  app: AppInstance,
  headers: Headers,
  rotationId: string,
  timeoutMs = 30_000,
): Promise<RotationView> {
  return eventually(
    `rotation ${rotationId} settled`,
    async () => {
      const view = (
        await app.inject({ url: `/v1/secret-rotations/${rotationId}`, headers })
      ).json<RotationView>();
      return view.state === 'succeeded' || view.state === 'rolled_back' ? view : undefined;
    },
    timeoutMs,
  );
}
