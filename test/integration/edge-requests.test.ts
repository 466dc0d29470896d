import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createTestApp, signUp, type TestApp } from '../support/app.js';
import { testBackends } from '../support/database.js';
import {
  assertError,
  createProject,
  FAST_HASHING,
  get,
  post,
  postText,
  put,
  type ProjectFixture,
  type User,
} from './fixtures.js';

// These answers come before or beside the database; one backend is enough.
const backend = testBackends().includes('postgres') ? 'postgres' : 'pglite';

/** Sends raw bytes to the listening app and returns everything it answers before closing. */
async function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.write(request);
  });
}

function envelopeOf(raw: string): { status: number; code: string; headers: string } {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  const status = Number(head.split(' ')[1]);
  const parsed = JSON.parse(body) as { error: { code: string; message: string } };
  assert.ok(parsed.error.message.length > 0);
  return { status, code: parsed.error.code, headers: head.toLowerCase() };
}

describe(`requests at the edges of the API on ${backend}`, () => {
  let t: TestApp;
  let owner: User;
  let project: ProjectFixture;
  let port: number;

  before(async () => {
    t = await createTestApp(backend, FAST_HASHING);
    owner = await signUp(t.app);
    project = await createProject(t, owner);
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const address = t.app.server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });
  after(async () => t.close());

  it('answers requests the HTTP parser refuses in the envelope, and closes', async () => {
    const conflicting = envelopeOf(
      await rawExchange(
        port,
        'POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n' +
          'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ),
    );
    assert.equal(conflicting.status, 400);
    assert.equal(conflicting.code, 'MALFORMED_REQUEST');
    assert.match(conflicting.headers, /connection: close/);

    const huge = envelopeOf(
      await rawExchange(
        port,
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      ),
    );
    assert.equal(huge.status, 431);
    assert.equal(huge.code, 'HEADERS_TOO_LARGE');
  });

  it('keeps a plugin refusal (static files of /docs) a 4xx in the envelope, never a 500', async () => {
    for (const url of ['/docs/static/../../../../etc/passwd', '/docs/static//evil.example/']) {
      const response = await t.app.inject({ method: 'GET', url });
      assert.ok(
        response.statusCode >= 400 && response.statusCode < 500,
        `${url}: ${response.statusCode}`,
      );
      assert.ok(response.json<{ error: { code: string } }>().error.code !== 'INTERNAL');
    }
  });

  it('refuses version numbers beyond what is stored with 400, not 500', async () => {
    const base = `/v1/projects/${project.slug}/secrets/API_KEY`;
    const written = await t.app.inject({
      ...put(base, { value: 'v'.repeat(12) }),
      headers: owner.headers,
    });
    assert.ok(written.statusCode < 300, written.body);
    const huge = 99_999_999_999;
    assertError(
      await t.app.inject({ ...get(`${base}/value?version=${huge}`), headers: owner.headers }),
      400,
      'VALIDATION_FAILED',
    );
    assertError(
      await t.app.inject({ ...post(`${base}/restore`, { version: huge }), headers: owner.headers }),
      400,
      'VALIDATION_FAILED',
    );
    assertError(
      await t.app.inject({
        ...post(`${base}/destroy`, { versions: [huge] }),
        headers: owner.headers,
      }),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('accepts the bearer scheme in any case', async () => {
    const token = String(owner.headers.authorization).split(' ')[1];
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const response = await t.app.inject({
        ...get('/v1/me'),
        headers: { authorization: `${scheme} ${token}` },
      });
      assert.equal(response.statusCode, 200, `${scheme}: ${response.body}`);
    }
  });

  it('marks configuration variables as not to be cached', async () => {
    const url = `/v1/services/${project.serviceId}/env`;
    const written = await t.app.inject({
      ...put(url, { variables: { GREETING: 'hi' } }),
      headers: owner.headers,
    });
    assert.equal(written.statusCode, 200, written.body);
    assert.equal(written.headers['cache-control'], 'no-store');
    const read = await t.app.inject({ ...get(url), headers: owner.headers });
    assert.equal(read.headers['cache-control'], 'no-store');
  });

  it('refuses variables no process environment can hold', async () => {
    const url = `/v1/services/${project.serviceId}/env`;
    // 40,000 characters of 4-byte UTF-8: within the schema's length, over 128 KiB as bytes.
    const wide = '😀'.repeat(40_000);
    assertError(
      await t.app.inject({ ...put(url, { variables: { WIDE: wide } }), headers: owner.headers }),
      400,
      'ENV_VAR_INVALID',
    );
    const text = { ...owner.headers, 'content-type': 'text/plain' };
    const imported = await t.app.inject({
      ...postText(`${url}/import`, `WIDE=${'x'.repeat(200_000)}\n`),
      headers: text,
    });
    assertError(imported, 400, 'ENV_VAR_INVALID');
    // Each part fits; merged, the service would hold more than 1 MiB.
    const half = (prefix: string) =>
      Object.fromEntries(
        Array.from({ length: 9 }, (_, i) => [`${prefix}${i}`, 'y'.repeat(60_000)]),
      );
    const first = await t.app.inject({
      ...put(url, { variables: half('A') }),
      headers: owner.headers,
    });
    assert.equal(first.statusCode, 200, first.body);
    const rest = Object.entries(half('B'))
      .map(([name, value]) => `${name}=${value}`)
      .join('\n');
    assertError(
      await t.app.inject({ ...postText(`${url}/import`, rest), headers: text }),
      400,
      'ENV_VAR_INVALID',
    );
  });

  it('refuses passwords with lone surrogates and names with control or bidi characters', async () => {
    const register = (password: string, name: string) =>
      t.app.inject(
        post('/v1/auth/register', { email: `edge${Date.now()}@example.com`, password, name }),
      );
    assertError(await register('\ud800'.repeat(12), 'Lone'), 400, 'VALIDATION_FAILED');
    assertError(
      await register('a fine password 😀 ok', 'Evil\u202Egnp.exe'),
      400,
      'VALIDATION_FAILED',
    );
    assertError(await register('a fine password 😀 ok', 'Bell\u0007'), 400, 'VALIDATION_FAILED');
    // Astral characters are whole code points, not lone surrogates.
    const fine = await register('a fine password 😀 ok', 'Zoë 😀 <b>');
    assert.equal(fine.statusCode, 202, fine.body);
  });
});
