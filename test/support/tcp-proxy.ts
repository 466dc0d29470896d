import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of one upstream (the test PostgreSQL), so a test can
 * make the database unavailable to Switchyard alone: `cut()` resets every connection and
 * refuses new ones, `restore()` listens again on the same port. `freeze()` is the nastier
 * failure: the connections open now stay open but every byte sent over them is dropped, as
 * when a network path dies without a reset; new connections are served as before.
 */
export class TcpProxy {
  private server: Server | undefined;
  /** Every socket open, forwarding or frozen. */
  private readonly sockets = new Set<Socket>();
  /** Connections still forwarding. */
  private readonly links = new Set<{ client: Socket; upstream: Socket }>();
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {}

  async start(): Promise<void> {
    await this.listen(0);
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    this.links.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Stops forwarding on every open connection without closing it; returns how many. Bytes
   * arriving on either side are read and dropped, so a side that closes is still noticed (and
   * the other side closed with it).
   */
  freeze(): number {
    const frozen = this.links.size;
    for (const { client, upstream } of this.links) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.resume();
      upstream.resume();
    }
    this.links.clear();
    return frozen;
  }

  async restore(): Promise<void> {
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }

  private async listen(port: number): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.upstream.port, this.upstream.host);
      const link = { client, upstream };
      this.links.add(link);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => {
          this.sockets.delete(socket);
          this.links.delete(link);
        });
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address !== null && typeof address === 'object') this.port = address.port;
    this.server = server;
  }
}
