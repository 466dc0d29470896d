import type { Logger } from 'pino';
import type { Config } from '../platform/config.js';
import type { Db } from '../platform/db/transaction.js';
import { knownSecrets } from '../platform/known-secrets.js';
import {
  FileCredential,
  gitCredentialFor,
  gitCredentialIn,
  type GitCredential,
} from './file-credential.js';
import { recordSecretAccess } from './secret-audit.js';
import * as repo from './secret.repository.js';
import { scopeOf } from './secret.tables.js';
import type { SecretValueStore } from './value-store.js';

/**
 * A project secret Switchyard itself uses, in git-credentials form (`https://user:token@host`
 * per line): the credentials its builds clone with. It is never delivered to a workload.
 */
export const GIT_CREDENTIALS_SECRET = 'SWITCHYARD_GIT_CREDENTIALS';

/** Names of secrets that are Switchyard's own, not a workload's. */
export function isPlatformSecret(name: string): boolean {
  return name === GIT_CREDENTIALS_SECRET;
}

/**
 * Git credentials for a build of a service: from the project's SWITCHYARD_GIT_CREDENTIALS
 * secret (project scope, current version) when it names the repository's host, else from the
 * SWITCHYARD_GIT_CREDENTIALS_PATH file. Both are read at every build, so a rotated token is
 * used by the next build without a restart. An unreadable source is logged and skipped.
 */
export function createGitCredentialSource(deps: {
  db: Db;
  logger: Logger;
  store: SecretValueStore;
  path: string | undefined;
}): (gitUrl: string, serviceId: string) => Promise<GitCredential | undefined> {
  const db = repo.lockboxDb(deps.db);
  const file = deps.path === undefined ? undefined : new FileCredential(deps.path);

  async function fromLockbox(
    gitUrl: string,
    serviceId: string,
  ): Promise<GitCredential | undefined> {
    const secret = (await repo.listProjectSecretsFor(db, serviceId)).find(
      (row) => row.name === GIT_CREDENTIALS_SECRET && scopeOf(row).kind === 'project',
    );
    if (secret === undefined) return undefined;
    const version = await repo.findVersion(db, secret.id, secret.current_version);
    if (version === undefined || version.state === 'destroyed') return undefined;
    const text = (await deps.store.get(secret.id, version)).toString('utf8');
    recordSecretAccess(deps.logger, {
      action: 'read',
      actor: 'system',
      secretId: secret.id,
      name: secret.name,
      scope: scopeOf(secret),
      version: version.version,
      reason: 'git credentials for a build',
    });
    return gitCredentialIn(text, gitUrl);
  }

  return async (gitUrl, serviceId) => {
    try {
      const stored = await fromLockbox(gitUrl, serviceId);
      if (stored !== undefined) return stored;
    } catch (error) {
      deps.logger.warn(
        { err: error, serviceId },
        'git credentials secret unreadable; trying the file',
      );
    }
    if (file === undefined) return undefined;
    try {
      return gitCredentialFor(file, gitUrl);
    } catch (error) {
      deps.logger.warn(
        { err: error, path: file.path },
        'git credentials file unreadable; cloning without credentials',
      );
      return undefined;
    }
  };
}

/**
 * Makes the passwords inside the database and Redis URLs known secret values, so a driver
 * error or a log line that quotes a URL is scrubbed. They are read once, at start.
 */
export function rememberConnectionPasswords(config: Readonly<Config>): void {
  for (const raw of [config.databaseUrl, config.redisUrl]) {
    if (raw === undefined) continue;
    try {
      const password = new URL(raw).password;
      if (password !== '') {
        knownSecrets.add(password);
        knownSecrets.add(decodeURIComponent(password));
      }
    } catch {
      // The configuration rejected an unparsable URL already.
    }
  }
}
