/**
 * The CLI's stored session: the API URL it signed in to and its tokens, in one JSON file
 * readable by its owner only. Tokens are sent only to the API that issued them.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiClient, ApiError, type TokenPair, type TokenSource } from './client.js';

export interface StoredCredentials {
  apiUrl: string;
  email?: string;
  accessToken?: string;
  refreshToken?: string;
  /** ISO-8601; the access token is refreshed a little before this. */
  accessTokenExpiresAt?: string;
}

type Env = Record<string, string | undefined>;

/** Refresh this long before the access token expires, so it does not lapse in flight. */
const EXPIRY_MARGIN_MS = 30_000;

export function credentialsPath(env: Env): string {
  const configDir = env['SWITCHYARD_CONFIG_DIR'];
  if (configDir !== undefined && configDir !== '') return join(configDir, 'credentials.json');
  return join(env['HOME'] ?? homedir(), '.config', 'switchyard', 'credentials.json');
}

/** The stored credentials; undefined when there is no file. Throws when it is unreadable. */
export async function findCredentials(path: string): Promise<StoredCredentials | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = parseCredentials(text);
  if (parsed === undefined) {
    throw new Error(`${path} is not a credentials file; delete it and run \`switchyard login\``);
  }
  return parsed;
}

/** Replaces the file atomically; it is created with mode 0600 in a 0700 directory. */
export async function saveCredentials(path: string, credentials: StoredCredentials): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, {
      mode: 0o600,
      flag: 'w',
    });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}

export function credentialsFromTokens(
  apiUrl: string,
  email: string | undefined,
  tokens: TokenPair,
  now: number = Date.now(),
): StoredCredentials {
  return {
    apiUrl,
    ...(email === undefined ? {} : { email }),
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    accessTokenExpiresAt: new Date(now + tokens.expiresIn * 1000).toISOString(),
  };
}

/**
 * Bearer tokens from the stored session. An expired access token is refreshed before use;
 * after a 401 the file is read again first, since another `switchyard` process may have
 * refreshed already (and refresh tokens are single-use).
 */
export function storedTokenSource(path: string, initial: StoredCredentials): TokenSource {
  let current = initial;
  let isRefreshRefused = false;

  const isFresh = (credentials: StoredCredentials) =>
    credentials.accessToken !== undefined &&
    Date.parse(credentials.accessTokenExpiresAt ?? '') - EXPIRY_MARGIN_MS > Date.now();

  const renew = async (): Promise<boolean> => {
    const onDisk = await findCredentials(path);
    const isNewer = onDisk?.apiUrl === current.apiUrl && onDisk.accessToken !== current.accessToken;
    if (onDisk !== undefined && isNewer && isFresh(onDisk)) {
      current = onDisk;
      return true;
    }
    if (current.refreshToken === undefined || isRefreshRefused) return false;

    let tokens: TokenPair;
    try {
      tokens = await new ApiClient(current.apiUrl).refresh(current.refreshToken);
    } catch (error) {
      isRefreshRefused = error instanceof ApiError && error.status === 401;
      if (isRefreshRefused) return false;
      throw error;
    }
    current = credentialsFromTokens(current.apiUrl, current.email, tokens);
    await saveCredentials(path, current);
    return true;
  };

  return {
    async token() {
      if (!isFresh(current) && current.refreshToken !== undefined) await renew();
      return current.accessToken;
    },
    renew,
  };
}

function parseCredentials(text: string): StoredCredentials | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Record<string, unknown>;
  if (typeof record['apiUrl'] !== 'string') return undefined;

  const credentials: StoredCredentials = { apiUrl: record['apiUrl'] };
  for (const key of ['email', 'accessToken', 'refreshToken', 'accessTokenExpiresAt'] as const) {
    const value = record[key];
    if (typeof value === 'string') credentials[key] = value;
  }
  return credentials;
}
