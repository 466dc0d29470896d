import net from 'node:net';

const MAX_ATTEMPTS = 20;

/**
 * Hands out free TCP ports on one host and remembers which it gave, so two instances never
 * get the same port even when the kernel offers it twice.
 */
export class PortAllocator {
  readonly #host: string;
  readonly #reserved = new Set<number>();

  constructor(host: string) {
    this.#host = host;
  }

  /**
   * Reserves `preferred` when it is still free (an instance restarting keeps its port),
   * otherwise another free port. Throws after repeated failures to bind.
   */
  async reserve(preferred?: number): Promise<number> {
    if (preferred !== undefined) {
      this.#reserved.delete(preferred);
      const port = await tryBind(this.#host, preferred);
      if (port !== undefined) return this.#keep(port);
    }

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const port = await tryBind(this.#host, 0);
      if (port !== undefined && !this.#reserved.has(port)) return this.#keep(port);
    }
    throw new Error(`no free port on ${this.#host} after ${MAX_ATTEMPTS} attempts`);
  }

  release(port: number): void {
    this.#reserved.delete(port);
  }

  #keep(port: number): number {
    this.#reserved.add(port);
    return port;
  }
}

/** Binds and closes at once; the port number when the bind worked, undefined when taken. */
function tryBind(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE' || error.code === 'EACCES') resolve(undefined);
      else reject(error);
    });
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}
