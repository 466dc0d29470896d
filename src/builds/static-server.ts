/**
 * The file server a static artifact starts with. The builder writes it into the artifact as
 * plain JavaScript, so the artifact runs with nothing but Node.js and needs no Switchyard code.
 * Usage: `node .switchyard/static-server.mjs <site folder>`; honours PORT and HOST.
 */
export const STATIC_SERVER_PATH = '.switchyard/static-server.mjs';

export const STATIC_SERVER_SOURCE = `// Written by the Switchyard local builder: serves one folder.
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

const TEXT = 'text/plain; charset=utf-8';
const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': TEXT,
  '.xml': 'application/xml; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.webmanifest': 'application/manifest+json',
};

const root = await realpath(resolve(process.argv[2] ?? '.'));
const home = await realpath(process.cwd());
if (root !== home && !root.startsWith(home + sep)) {
  console.error('the site folder must lie inside the artifact');
  process.exit(1);
}
const port = Number(process.env.PORT ?? '8080');
const host = process.env.HOST ?? '127.0.0.1';

// Resolves a URL path to a regular file inside the root, or undefined. Dot-files and
// dot-folders (.env, .git, .switchyard) are never served.
async function locate(pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (decoded.includes('\\0')) return undefined;
  const parts = decoded.split('/');
  if (parts.some((part) => part.startsWith('.') && part !== '.well-known')) return undefined;

  let file = resolve(root, '.' + decoded);
  if (file !== root && !file.startsWith(root + sep)) return undefined;
  let info = await stat(file).catch(() => undefined);
  if (info?.isDirectory()) {
    file = join(file, 'index.html');
    info = await stat(file).catch(() => undefined);
  }
  if (!info?.isFile()) return undefined;

  // A symlink may point anywhere; only serve what really lies inside the root.
  const real = await realpath(file).catch(() => undefined);
  if (real === undefined || !real.startsWith(root + sep)) return undefined;
  return { path: real, size: info.size };
}

function send(response, status, type, body, headers = {}) {
  const length = Buffer.byteLength(body);
  response.writeHead(status, { 'content-type': type, 'content-length': length, ...headers });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

async function handle(request, response) {
  response.setHeader('x-content-type-options', 'nosniff');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return send(response, 405, TEXT, 'method not allowed\\n', { allow: 'GET, HEAD' });
  }
  const { pathname } = new URL(request.url ?? '/', 'http://localhost');
  if (pathname === '/healthz') return send(response, 200, TEXT, 'ok\\n');

  const found = await locate(pathname);
  if (found !== undefined) return sendFile(request, response, 200, found);
  const notFound = await locate('/404.html');
  if (notFound !== undefined) return sendFile(request, response, 404, notFound);
  return send(response, 404, TEXT, 'not found\\n');
}

function sendFile(request, response, status, file) {
  const type = CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream';
  response.writeHead(status, { 'content-type': type, 'content-length': file.size });
  if (request.method === 'HEAD') return response.end();
  createReadStream(file.path)
    .on('error', () => response.destroy())
    .pipe(response);
}

const server = createServer((request, response) => {
  handle(request, response).catch(() => {
    if (!response.headersSent) send(response, 500, TEXT, 'internal error\\n');
    else response.destroy();
  });
});

server.listen(port, host, () => {
  const address = server.address();
  console.log('static server listening on ' + host + ':' + address.port);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
`;
