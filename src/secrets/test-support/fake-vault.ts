import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP server on 127.0.0.1 that speaks the part of Vault's KV version 2 API Switchyard
 * uses, with Vault's status codes and bodies: `data/` (read a version, write with
 * check-and-set), `metadata/` (read, delete), `destroy/`. One mount, tokens checked.
 */
interface StoredVersion {
  data: Record<string, unknown> | undefined;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

export interface FakeVault {
  address: string;
  mount: string;
  /** The token requests must carry; change it to simulate a rotated token. */
  token: string;
  /** path → versions (index 0 is version 1). */
  paths: Map<string, StoredVersion[]>;
  requests: Array<{ method: string; path: string; token: string | undefined }>;
  /** Runs before a data write is applied (tests race a writer in here). */
  beforeWrite?: (path: string) => void;
  close(): Promise<void>;
}

export async function startFakeVault(options: {
  mount?: string;
  token: string;
}): Promise<FakeVault> {
  const mount = options.mount ?? 'secret';
  const fake: FakeVault = {
    address: '',
    mount,
    token: options.token,
    paths: new Map(),
    requests: [],
    close: async () => undefined,
  };

  const write = (
    path: string,
    data: Record<string, unknown>,
    cas: number | undefined,
    res: ServerResponse,
  ) => {
    fake.beforeWrite?.(path);
    const versions = fake.paths.get(path) ?? [];
    if (cas !== undefined && cas !== versions.length) {
      return send(res, 400, {
        errors: [`check-and-set parameter did not match the current version`],
      });
    }
    const stored: StoredVersion = {
      data,
      created_time: new Date().toISOString(),
      deletion_time: '',
      destroyed: false,
    };
    versions.push(stored);
    fake.paths.set(path, versions);
    return send(res, 200, {
      data: {
        version: versions.length,
        created_time: stored.created_time,
        deletion_time: '',
        destroyed: false,
        custom_metadata: null,
      },
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://vault');
    const token = req.headers['x-vault-token'];
    fake.requests.push({
      method: req.method ?? '',
      path: url.pathname,
      token: typeof token === 'string' ? token : undefined,
    });
    if (token !== fake.token) return send(res, 403, { errors: ['permission denied'] });
    const prefix = `/v1/${mount}/`;
    if (!url.pathname.startsWith(prefix)) return send(res, 404, { errors: [] });
    const [kind, ...rest] = url.pathname.slice(prefix.length).split('/');
    const path = rest.join('/');
    const body = await readJson(req);
    const versions = fake.paths.get(path);

    if (kind === 'data' && (req.method === 'POST' || req.method === 'PUT')) {
      const options = (body['options'] ?? {}) as { cas?: number };
      return write(path, (body['data'] ?? {}) as Record<string, unknown>, options.cas, res);
    }
    if (kind === 'data' && req.method === 'GET') {
      const wanted = Number(url.searchParams.get('version') ?? versions?.length ?? 0);
      const found = versions?.[wanted - 1];
      if (found === undefined || found.destroyed || found.data === undefined)
        return send(res, 404, { errors: [] });
      return send(res, 200, {
        data: {
          data: found.data,
          metadata: {
            version: wanted,
            created_time: found.created_time,
            deletion_time: '',
            destroyed: false,
          },
        },
      });
    }
    if (kind === 'metadata' && req.method === 'GET') {
      if (versions === undefined) return send(res, 404, { errors: [] });
      const listed = Object.fromEntries(
        versions.map((v, i) => [
          String(i + 1),
          { created_time: v.created_time, deletion_time: v.deletion_time, destroyed: v.destroyed },
        ]),
      );
      return send(res, 200, {
        data: {
          current_version: versions.length,
          oldest_version: 1,
          versions: listed,
          cas_required: false,
          max_versions: 0,
        },
      });
    }
    if (kind === 'metadata' && req.method === 'DELETE') {
      fake.paths.delete(path);
      return send(res, 204);
    }
    if (kind === 'destroy' && (req.method === 'PUT' || req.method === 'POST')) {
      for (const version of (body['versions'] ?? []) as number[]) {
        const found = versions?.[version - 1];
        if (found !== undefined) Object.assign(found, { destroyed: true, data: undefined });
      }
      return send(res, 204);
    }
    return send(res, 405, { errors: [] });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 500, { errors: ['internal error'] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise((resolve) => server.close(() => resolve()));
  return fake;
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += String(chunk);
  if (text === '') return {};
  return JSON.parse(text) as Record<string, unknown>;
}
