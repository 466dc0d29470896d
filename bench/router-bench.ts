import http from 'node:http';
import { pino } from 'pino';
import { createRouter } from '../src/router/router.js';
import { compare, measure } from './load.js';
import { firstLine, startChild } from './processes.js';
import type { BenchContext } from './settings.js';

export const ROUTER_TARGET = 0.7;
const HOSTNAME = 'bench.localhost';

// The smallest useful upstream: a constant JSON answer with keep-alive, printing its port.
const TINY_APP = `
const http = require('node:http');
const body = JSON.stringify({ hello: 'world' });
const server = http.createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/**
 * Diagnostic: the least a Node.js proxy can do (one pooled keep-alive request, piped back),
 * which tells the router's own overhead from the cost of proxying in Node.js at all.
 */
function minimalProxy(upstreamPort: number): http.Server {
  const agent = new http.Agent({ keepAlive: true });
  return http.createServer((request, response) => {
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: request.method,
        path: request.url,
        headers: request.headers,
        agent,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  });
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** Part 3: the same tiny app called directly and through the router, Host-routed. */
export async function benchRouter(context: BenchContext): Promise<void> {
  const { report, load, settings } = context;
  const env = { PATH: process.env['PATH'] ?? '' };
  const upstream = startChild(process.execPath, ['-e', TINY_APP], { env });
  const router = createRouter({ logger: pino({ level: 'silent' }), port: 0, host: '127.0.0.1' });
  let proxy: http.Server | undefined;
  try {
    const upstreamPort = Number(await firstLine(upstream, 10_000));
    const helperPids = async () =>
      upstream.process.pid === undefined ? [] : [upstream.process.pid];
    const routerPort = await router.listen();
    router.setRoute(HOSTNAME, [{ host: '127.0.0.1', port: upstreamPort }]);
    const direct = { label: 'direct to app', url: `http://127.0.0.1:${upstreamPort}/`, helperPids };
    const routed = {
      label: 'through router',
      url: `http://127.0.0.1:${routerPort}/`,
      headers: { host: HOSTNAME },
      helperPids,
    };
    const comparison = await compare(load, routed, direct, settings);
    report.addComparison('router proxy', comparison, ROUTER_TARGET);

    proxy = minimalProxy(upstreamPort);
    const minimal = {
      label: 'bare: minimal Node.js proxy',
      url: `http://127.0.0.1:${await listen(proxy)}/`,
      helperPids,
    };
    const floor = await measure(load, minimal, settings);
    report.addFigure('router proxy', floor);
    report.addRatio('router proxy: router ÷ minimal Node.js proxy', comparison.subject, floor);
  } finally {
    proxy?.closeAllConnections();
    proxy?.close();
    await router.close();
    await upstream.stop();
  }
}
