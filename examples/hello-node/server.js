// hello-node: the app Switchyard's README walkthrough deploys. No dependencies.
import { createServer } from 'node:http';

const MESSAGE = 'Hello from hello-node v1';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 3000);
const SHUTDOWN_DEADLINE_MS = 4500; // exit well inside the 5 s a supervisor grants after SIGTERM
const MAX_SLOW_MS = 4000;

if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  console.error(`hello-node: invalid PORT ${JSON.stringify(process.env.PORT)}`);
  process.exit(1);
}

let isShuttingDown = false;

function reply(res, status, body, type = 'text/plain; charset=utf-8') {
  const headers = { 'content-type': type, 'content-length': Buffer.byteLength(body) };
  // While draining, close each keep-alive connection once its response is sent.
  if (isShuttingDown) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

function greeting() {
  const extra = process.env.GREETING ? `${process.env.GREETING}\n` : '';
  return `${MESSAGE}\n${extra}`;
}

// The raw bytes of one variable, so a test can prove configuration arrives byte-exact.
function replyWithEnv(res, encodedName) {
  let name;
  try {
    name = decodeURIComponent(encodedName);
  } catch {
    return reply(res, 400, 'bad variable name\n');
  }
  const value = process.env[name];
  if (value === undefined) return reply(res, 404, 'not set\n');
  reply(res, 200, Buffer.from(value, 'utf8'), 'application/octet-stream');
}

// A request that takes a while, so a test can prove in-flight requests survive SIGTERM.
function replySlowly(res, searchParams) {
  const ms = Math.min(Math.max(Number(searchParams.get('ms')) || 0, 0), MAX_SLOW_MS);
  setTimeout(() => reply(res, 200, `slept ${ms} ms\n`), ms);
}

function handle(req, res) {
  const { pathname, searchParams } = new URL(req.url ?? '/', 'http://hello-node.invalid');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return reply(res, 405, 'method not allowed\n');
  }
  if (pathname === '/') return reply(res, 200, greeting());
  if (pathname === '/healthz') return reply(res, 200, 'ok');
  if (pathname === '/slow') return replySlowly(res, searchParams);
  if (pathname.startsWith('/env/')) return replyWithEnv(res, pathname.slice('/env/'.length));
  reply(res, 404, 'not found\n');
}

const server = createServer(handle);

server.listen(PORT, HOST, () => {
  const { address, port } = server.address();
  const host = address.includes(':') ? `[${address}]` : address;
  console.log(`hello-node listening on http://${host}:${port}`);
});

// Stop accepting, let in-flight requests finish, exit 0; cut stragglers at the deadline.
function shutdown(signal) {
  if (isShuttingDown) return;
  isShuttingDown = true;
  console.log(`hello-node received ${signal}, draining`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    console.log('hello-node drain deadline reached, closing remaining connections');
    server.closeAllConnections();
    process.exit(0);
  }, SHUTDOWN_DEADLINE_MS).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
