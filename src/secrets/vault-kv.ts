import { AppError } from '../platform/errors.js';

/**
 * A small client for HashiCorp Vault's KV version 2 secrets engine: the data, metadata and
 * destroy endpoints, versions and check-and-set. Values never appear in its errors: Vault's
 * error strings are kept as the cause only, and Vault does not echo written data in them.
 */
export interface VaultKvOptions {
  address: string;
  /** Where the KV v2 engine is mounted, e.g. `secret`. */
  mount: string;
  namespace?: string | undefined;
  /** Read on every request, so a rotated token file takes effect at once. */
  token: () => Promise<string>;
  timeoutMs: number;
}

export interface VaultVersionMetadata {
  version: number;
  createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

export interface VaultSecretMetadata {
  currentVersion: number;
  oldestVersion: number;
  versions: Record<string, { created_time: string; deletion_time: string; destroyed: boolean }>;
}

interface VaultResponse {
  status: number;
  body: unknown;
}

const CAS_MISMATCH = /check-and-set parameter did not match/i;

export class VaultKvClient {
  readonly #options: VaultKvOptions;

  constructor(options: VaultKvOptions) {
    this.#options = { ...options, address: options.address.replace(/\/+$/, '') };
  }

  /** A version's data (the current one when `version` is absent); undefined when absent, deleted or destroyed. */
  async read(
    path: string,
    version?: number,
  ): Promise<{ data: Record<string, unknown>; metadata: VaultVersionMetadata } | undefined> {
    const query = version === undefined ? '' : `?version=${version}`;
    const response = await this.#send('GET', `data/${path}${query}`);
    if (response.status === 404) return undefined;
    this.#expect(response, [200]);
    const data = field(response.body, 'data');
    return {
      data: objectOf(field(data, 'data')),
      metadata: toVersionMetadata(field(data, 'metadata')),
    };
  }

  /**
   * Writes a new version. With `cas`, Vault accepts the write only if the current version is
   * `cas` (0: only if the path holds nothing); otherwise the write fails with SECRET_CONFLICT.
   */
  async write(
    path: string,
    data: Record<string, string>,
    options: { cas?: number } = {},
  ): Promise<VaultVersionMetadata> {
    const body = { data, ...(options.cas === undefined ? {} : { options: { cas: options.cas } }) };
    const response = await this.#send('POST', `data/${path}`, body);
    if (
      response.status === 400 &&
      errorsOf(response.body).some((message) => CAS_MISMATCH.test(message))
    ) {
      throw new AppError(
        'SECRET_CONFLICT',
        'The secret changed in Vault since it was read; retry the write',
      );
    }
    this.#expect(response, [200]);
    return toVersionMetadata(field(response.body, 'data'));
  }

  async readMetadata(path: string): Promise<VaultSecretMetadata | undefined> {
    const response = await this.#send('GET', `metadata/${path}`);
    if (response.status === 404) return undefined;
    this.#expect(response, [200]);
    const data = field(response.body, 'data');
    return {
      currentVersion: numberOf(field(data, 'current_version')),
      oldestVersion: numberOf(field(data, 'oldest_version')),
      versions: objectOf(field(data, 'versions')) as VaultSecretMetadata['versions'],
    };
  }

  /** Permanently removes the data of the given versions; their metadata stays. */
  async destroy(path: string, versions: number[]): Promise<void> {
    if (versions.length === 0) return;
    this.#expect(await this.#send('PUT', `destroy/${path}`, { versions }), [200, 204]);
  }

  /** Removes the path with every version and its metadata. */
  async deleteMetadata(path: string): Promise<void> {
    this.#expect(await this.#send('DELETE', `metadata/${path}`), [200, 204, 404]);
  }

  async #send(method: string, suffix: string, body?: unknown): Promise<VaultResponse> {
    const { address, mount, namespace, timeoutMs } = this.#options;
    const headers: Record<string, string> = {
      'x-vault-token': await this.#options.token(),
      accept: 'application/json',
    };
    if (namespace !== undefined) headers['x-vault-namespace'] = namespace;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${address}/v1/${mount}/${suffix}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch (error) {
      throw new AppError('SECRET_STORE_UNAVAILABLE', 'Vault cannot be reached', { cause: error });
    }
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed };
  }

  #expect(response: VaultResponse, statuses: number[]): void {
    if (statuses.includes(response.status)) return;
    const cause = new Error(
      `vault answered ${response.status}: ${errorsOf(response.body).join('; ')}`,
    );
    const message =
      response.status === 403
        ? "Vault refused Switchyard's token"
        : `Vault answered ${response.status}`;
    throw new AppError('SECRET_STORE_UNAVAILABLE', message, { cause });
  }
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null
    ? (value as Record<string, unknown>)[name]
    : undefined;
}

function objectOf(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('SECRET_STORE_UNAVAILABLE', 'Vault answered with an unexpected body');
  }
  return value as Record<string, unknown>;
}

function numberOf(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new AppError('SECRET_STORE_UNAVAILABLE', 'Vault answered with an unexpected body');
  }
  return value;
}

function toVersionMetadata(value: unknown): VaultVersionMetadata {
  return {
    version: numberOf(field(value, 'version')),
    createdTime: String(field(value, 'created_time') ?? ''),
    deletionTime: String(field(value, 'deletion_time') ?? ''),
    destroyed: field(value, 'destroyed') === true,
  };
}

function errorsOf(body: unknown): string[] {
  const errors = field(body, 'errors');
  return Array.isArray(errors) ? errors.map(String) : [];
}
