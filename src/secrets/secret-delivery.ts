import type { Logger } from 'pino';
import type { Db } from '../platform/db/transaction.js';
import { recordSecretAccess } from './secret-audit.js';
import * as repo from './secret.repository.js';
import { SCOPE_PRECEDENCE, scopeOf, type SecretRow } from './secret.tables.js';
import type { SecretValueStore } from './value-store.js';
import { isPlatformSecret } from './platform-credentials.js';

/** What a workload gets from Lockbox: variables to add, and the values to redact from its output. */
export interface WorkloadSecrets {
  env: Record<string, string>;
  values: string[];
}

/** Secret id → version: what one deployment runs with. */
export type SecretPins = Record<string, number>;

/** Orders secrets so that applying them in turn lets the narrower scope win. */
function byPrecedence(a: SecretRow, b: SecretRow): number {
  return SCOPE_PRECEDENCE[scopeOf(a).kind] - SCOPE_PRECEDENCE[scopeOf(b).kind];
}

/**
 * Assembles workload environments. Precedence, lowest first: the release's configuration
 * variables, then project secrets, then environment secrets, then service secrets; the
 * narrowest scope wins for a name set in several. A deployment's versions are pinned the
 * first time it starts, so restarts reproduce it exactly and a rotation can name new ones.
 */
export function createSecretDelivery(deps: { db: Db; logger: Logger; store: SecretValueStore }) {
  const db = repo.lockboxDb(deps.db);

  /** The current version of every secret that wins for the service in the environment. */
  async function currentPins(target: {
    serviceId: string;
    environmentId: string;
  }): Promise<SecretPins> {
    const winners = new Map<string, SecretRow>();
    const applicable = await repo.listApplicableSecrets(db, target);
    for (const row of applicable.sort(byPrecedence)) {
      if (!isPlatformSecret(row.name)) winners.set(row.name, row);
    }
    return Object.fromEntries([...winners.values()].map((row) => [row.id, row.current_version]));
  }

  /** The deployment's pins, chosen from the current versions if it has none yet. */
  async function pinsOf(deployment: {
    id: string;
    service_id: string;
    environment_id: string;
  }): Promise<SecretPins> {
    const pinned = await repo.findDeploymentPins(db, deployment.id);
    if (pinned !== undefined) return pinned;
    const current = await currentPins({
      serviceId: deployment.service_id,
      environmentId: deployment.environment_id,
    });
    return repo.ensureDeploymentPins(db, deployment.id, current);
  }

  /**
   * The variables a deployment's instances get from secrets. A value a process environment
   * cannot carry (a NUL byte, bytes that are not UTF-8) is left out with a warning; it stays
   * readable through the API.
   */
  async function workloadSecrets(deployment: {
    id: string;
    service_id: string;
    environment_id: string;
  }): Promise<WorkloadSecrets> {
    const pins = await pinsOf(deployment);
    const ids = Object.keys(pins);
    const secrets = (await repo.listSecretsByIds(db, ids)).sort(byPrecedence);
    const versions = await repo.findVersions(
      db,
      secrets.map((row) => ({ secretId: row.id, version: pins[row.id] ?? row.current_version })),
    );
    const env: Record<string, string> = {};
    const values: string[] = [];
    for (const secret of secrets) {
      const row = versions.find((version) => version.secret_id === secret.id);
      if (row === undefined || row.state === 'destroyed') {
        deps.logger.warn(
          { deploymentId: deployment.id, secretId: secret.id, version: pins[secret.id] },
          'pinned secret version is gone; not delivered',
        );
        continue;
      }
      const bytes = await deps.store.get(secret.id, row);
      const text = bytes.toString('utf8');
      if (text.includes('\0') || !Buffer.from(text, 'utf8').equals(bytes)) {
        deps.logger.warn(
          { deploymentId: deployment.id, secretId: secret.id, name: secret.name },
          'secret cannot be an environment variable; not delivered',
        );
        continue;
      }
      env[secret.name] = text;
      values.push(text);
      recordSecretAccess(deps.logger, {
        action: 'deliver',
        actor: 'system',
        secretId: secret.id,
        name: secret.name,
        scope: scopeOf(secret),
        version: row.version,
        deploymentId: deployment.id,
      });
    }
    return { env, values };
  }

  /**
   * The current values of every secret the service could receive in any environment, for
   * redacting build output (a build belongs to no environment, and a repository may hold a
   * copy of a secret by mistake).
   */
  async function knownValues(serviceId: string): Promise<string[]> {
    const rows = await repo.listProjectSecretsFor(db, serviceId);
    const versions = await repo.findVersions(
      db,
      rows.map((row) => ({ secretId: row.id, version: row.current_version })),
    );
    const values: string[] = [];
    for (const row of versions) {
      if (row.state === 'destroyed') continue;
      values.push((await deps.store.get(row.secret_id, row)).toString('utf8'));
    }
    return values;
  }

  return { currentPins, pinsOf, workloadSecrets, knownValues };
}

export type SecretDelivery = ReturnType<typeof createSecretDelivery>;
