import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { pino } from 'pino';
import { testBackends } from '../support/database.js';
import {
  createIdentityTestApp,
  login,
  PASSWORD,
  type IdentityTestApp,
} from '../support/identity.js';
import { prepareQueue } from '../../src/platform/workers.js';
import { startIdentityWork } from '../../src/auth/identity.jobs.js';
import { createSignUpService } from '../../src/auth/sign-up.service.js';
import { createPasswordHasher, type PasswordHasher } from '../../src/auth/password.js';
import { createSignInGuard } from '../../src/auth/sign-in-guard.js';
import { createMemoryRateLimiter } from '../../src/auth/rate-limiter.js';
import { identityDb } from '../../src/auth/auth.tables.js';
import { accountKey } from '../../src/auth/sign-in-guard.js';
import { sql } from 'kysely';
import type { SignUpPolicy } from '../../src/auth/auth.config.js';
import type { AppInstance } from '../../src/platform/app.js';

interface Mail {
  to: string;
  text: string;
}

/** A real SMTP server on loopback that keeps every message it receives. */
async function startSmtpServer(credentials: { user: string; pass: string }) {
  const mails: Mail[] = [];
  const waiters: Array<() => void> = [];
  const server = new SMTPServer({
    // Plain on loopback; the mailer must still authenticate with the password from its file.
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.pass)
        return callback(null, { user: auth.username });
      return callback(new Error('invalid credentials'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((rcpt) => rcpt.address).join(',');
        // Undo quoted-printable soft breaks so tokens read whole.
        const text = Buffer.concat(chunks)
          .toString('utf8')
          .replace(/=\r?\n/g, '');
        mails.push({ to, text });
        for (const wake of waiters.splice(0)) wake();
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    mails,
    /** The next mail to `to`, waiting for it to arrive (bounded). */
    async mailTo(to: string, timeoutMs = 15_000): Promise<Mail> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = mails.find((mail) => mail.to === to);
        if (found !== undefined) return found;
        if (Date.now() > deadline) throw new Error(`no mail to ${to} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 200);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const tokenIn = (mail: Mail) => /syv_[A-Za-z0-9_-]{43}/.exec(mail.text)?.[0];

const signUp = (app: AppInstance, email: string, password = PASSWORD, name = 'New') =>
  app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password, name } });

const verify = (app: AppInstance, token: unknown) =>
  app.inject({ method: 'POST', url: '/v1/auth/verify', payload: { token } });

const fresh = (label: string) =>
  `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;

/** What a client can observe of an answer, minus what differs on every request. */
function observable(response: Awaited<ReturnType<typeof signUp>>) {
  const headers = { ...response.headers };
  delete headers['x-request-id'];
  delete headers['date'];
  return { status: response.statusCode, body: response.body, headers };
}

async function userCount(t: IdentityTestApp): Promise<number> {
  const rows = await t.deps.database.db.selectFrom('users').select('id').execute();
  return rows.length;
}

for (const backend of testBackends()) {
  describe(`sign-up, open (no mail configured) on ${backend}`, () => {
    let t: IdentityTestApp;
    before(async () => {
      t = await createIdentityTestApp(backend);
    });
    after(async () => t.close());

    it('answers a taken address exactly like a new one, and the new account works at once', async () => {
      const email = fresh('open');
      const first = await signUp(t.app, email);
      assert.equal(first.statusCode, 202, first.body);
      assert.equal(first.json().next, 'sign_in');
      const users = await userCount(t);

      const taken = await signUp(t.app, email, 'another long password', 'Impostor');
      assert.deepEqual(observable(taken), observable(first));
      assert.equal(await userCount(t), users, 'the taken case creates nothing');

      await login(t.app, email);
      const impostor = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password: 'another long password' },
      });
      assert.equal(impostor.statusCode, 401, 'the second sign-up changed nothing');
    });

    it('records the taken case as a security event and an audit event', async () => {
      const email = fresh('audited');
      await signUp(t.app, email);
      await signUp(t.app, email);
      const event = t.logs.find((line) => line['securityEvent'] === 'sign_up.email_taken');
      assert.ok(event !== undefined, 'security event logged');
      assert.ok(!JSON.stringify(t.logs).includes(PASSWORD), 'no password in any log line');
      await t.deps.audit.writer.flush();
      const audit = await t.deps.database.db
        .withTables<{ audit_events: { action: string; outcome: string } }>()
        .selectFrom('audit_events')
        .select(['action', 'outcome'])
        .where('action', '=', 'auth.sign_up')
        .execute();
      assert.ok(
        audit.some((row) => row.outcome === 'failure'),
        `audit rows: ${JSON.stringify(audit)}`,
      );
    });

    it('refuses bad input with the error envelope', async () => {
      const cases: Array<[string, Record<string, unknown>]> = [
        ['/v1/auth/register', { email: 'not-an-email', password: PASSWORD, name: 'X' }],
        ['/v1/auth/register', { email: fresh('short'), password: 'short', name: 'X' }],
        ['/v1/auth/register', { email: fresh('nameless'), password: PASSWORD }],
        [
          '/v1/auth/register',
          { email: fresh('x'), password: PASSWORD, name: 'X', status: 'active' },
        ],
        ['/v1/auth/verify', { token: 'has spaces and ; semicolons' }],
        ['/v1/auth/verify', { token: 'x'.repeat(500) }],
        ['/v1/auth/verify', {}],
      ];
      for (const [url, payload] of cases) {
        const response = await t.app.inject({ method: 'POST', url, payload });
        assert.equal(
          response.statusCode,
          400,
          `${url} ${JSON.stringify(payload)}: ${response.body}`,
        );
        assert.equal(response.json().error.code, 'VALIDATION_FAILED');
      }
      const unknown = await verify(t.app, 'syv_nothing-was-ever-issued-with-this-value');
      assert.equal(unknown.statusCode, 400);
      assert.equal(unknown.json().error.code, 'SIGN_UP_TOKEN_INVALID');
    });
  });

  describe(`sign-up hashes the password whatever the address on ${backend}`, () => {
    let t: IdentityTestApp;
    before(async () => {
      t = await createIdentityTestApp(backend);
      await prepareQueue(t.deps);
    });
    after(async () => {
      await t.deps.queue.stop(2_000);
      await t.close();
    });

    for (const mode of ['open', 'verify'] as const) {
      it(`runs the hasher once for a new and once for a taken address (${mode})`, async () => {
        const real = createPasswordHasher(t.deps.config.auth.password);
        let hashes = 0;
        const counting: PasswordHasher = {
          ...real,
          hash: async (password) => {
            hashes += 1;
            return real.hash(password);
          },
        };
        const logger = pino({ level: 'silent' });
        const db = t.deps.database.db;
        const policy: SignUpPolicy = { mode, tokenTtlSeconds: 3_600, mailIntervalSeconds: 1 };
        const service = createSignUpService({
          db,
          logger,
          hasher: counting,
          guard: createSignInGuard({
            db,
            limiter: createMemoryRateLimiter(),
            settings: t.deps.config.auth,
            logger,
          }),
          queue: t.deps.queue,
          policy,
          mailer: undefined,
        });
        const client = { ip: '127.0.0.1', userAgent: undefined };
        const email = fresh(`counted-${mode}`);
        await t.app.inject({
          method: 'POST',
          url: '/v1/auth/register',
          payload: { email, password: PASSWORD, name: 'Existing' },
        });
        const users = await userCount(t);

        const taken = await service.register({ email, password: PASSWORD, name: 'T' }, client);
        assert.equal(hashes, 1, 'hashed for the taken address');
        const created = await service.register(
          { email: fresh('counted-new'), password: PASSWORD, name: 'N' },
          client,
        );
        assert.equal(hashes, 2, 'hashed for the new address');
        assert.deepEqual(taken, created, 'the same answer');
        assert.equal(await userCount(t), mode === 'open' ? users + 1 : users);
      });
    }
  });

  describe(`sign-up closed on ${backend}`, () => {
    let t: IdentityTestApp;
    before(async () => {
      t = await createIdentityTestApp(backend, { env: { SWITCHYARD_SIGN_UP: 'closed' } });
    });
    after(async () => t.close());

    it('lets the first account in, then only instance admins create users', async () => {
      const adminEmail = fresh('first');
      assert.equal((await signUp(t.app, adminEmail)).statusCode, 202, 'the first account');
      const admin = await login(t.app, adminEmail);

      const taken = await signUp(t.app, adminEmail);
      const fresher = await signUp(t.app, fresh('refused'));
      for (const response of [taken, fresher]) {
        assert.equal(response.statusCode, 403, response.body);
        assert.equal(response.json().error.code, 'SIGN_UP_CLOSED');
      }
      assert.equal(taken.json().error.message, fresher.json().error.message);
      assert.equal(await userCount(t), 1);

      const email = fresh('made');
      const made = await t.app.inject({
        method: 'POST',
        url: '/v1/admin/users',
        headers: admin.headers,
        payload: { email, password: PASSWORD, name: 'Made' },
      });
      assert.equal(made.statusCode, 201, made.body);
      assert.equal(made.json().email, email);
      assert.equal(made.json().isInstanceAdmin, false);
      await login(t.app, email);

      const again = await t.app.inject({
        method: 'POST',
        url: '/v1/admin/users',
        headers: admin.headers,
        payload: { email, password: PASSWORD, name: 'Made' },
      });
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().error.code, 'ACCOUNT_EXISTS');

      const user = await login(t.app, email);
      const notAdmin = await t.app.inject({
        method: 'POST',
        url: '/v1/admin/users',
        headers: user.headers,
        payload: { email: fresh('nope'), password: PASSWORD, name: 'Nope' },
      });
      assert.equal(notAdmin.statusCode, 403);
    });
  });

  describe(`sign-up with email verification on ${backend}`, () => {
    const credentials = { user: 'switchyard', pass: 'smtp password from a file' };
    let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
    let t: IdentityTestApp;
    let secretsDir: string;
    let passwordFile: string;
    const stop = new AbortController();

    before(async () => {
      smtp = await startSmtpServer(credentials);
      secretsDir = mkdtempSync(join(tmpdir(), 'switchyard-smtp-'));
      passwordFile = join(secretsDir, 'smtp-password');
      writeFileSync(passwordFile, `${credentials.pass}\n`, { mode: 0o600 });
      t = await createIdentityTestApp(backend, {
        env: {
          SWITCHYARD_SMTP_URL: `smtp://${credentials.user}@127.0.0.1:${smtp.port}`,
          SWITCHYARD_SMTP_PASSWORD_FILE: passwordFile,
          SWITCHYARD_MAIL_FROM: 'Switchyard <switchyard@example.com>',
        },
      });
      assert.equal(t.deps.config.auth.signUp.mode, 'verify', 'verify is the default with SMTP');
      await prepareQueue(t.deps);
      await startIdentityWork(t.deps, stop.signal);
    });
    after(async () => {
      stop.abort();
      await t.deps.queue.stop(2_000);
      await t.close();
      await smtp.close();
      rmSync(secretsDir, { recursive: true, force: true });
    });

    it('keeps a new account pending until the mailed token is redeemed, once', async () => {
      const email = fresh('verify');
      const accepted = await signUp(t.app, email);
      assert.equal(accepted.statusCode, 202, accepted.body);
      assert.equal(accepted.json().next, 'verify_email');
      // Again inside the mail interval: answered alike, and no second mail is queued.
      const again = await signUp(t.app, email, 'a second long password');
      assert.deepEqual(observable(again), observable(accepted));
      const queued = await sql<{ count: number }>`
        SELECT count(*)::int AS count FROM pgboss.job
        WHERE name = 'identity.sign_up_mail' AND singleton_key = ${`sign-up:${accountKey(email)}`}
      `.execute(t.deps.database.db);
      assert.equal(queued.rows[0]?.count, 1, 'one mail per address per interval');

      const pending = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password: PASSWORD },
      });
      const wrong = await t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email: fresh('nobody'), password: PASSWORD },
      });
      assert.equal(pending.statusCode, 401);
      assert.deepEqual(
        { ...pending.json().error, requestId: '' },
        { ...wrong.json().error, requestId: '' },
        'a pending account answers like bad credentials',
      );

      const mail = await smtp.mailTo(email);
      const token = tokenIn(mail);
      assert.ok(token !== undefined, `no token in: ${mail.text}`);
      const stored = await identityDb(t.deps.database.db)
        .selectFrom('pending_sign_ups')
        .select(['token_hash'])
        .where('email', '=', email)
        .executeTakeFirstOrThrow();
      assert.notEqual(stored.token_hash, token, 'only a hash of the token is stored');
      assert.ok(!JSON.stringify(t.logs).includes(token), 'the token is in no log line');

      const verified = await verify(t.app, token);
      assert.equal(verified.statusCode, 200, verified.body);
      assert.equal(verified.json().email, email);
      await login(t.app, email);

      const reused = await verify(t.app, token);
      assert.equal(reused.statusCode, 400);
      assert.equal(reused.json().error.code, 'SIGN_UP_TOKEN_INVALID');
    });

    it('refuses an expired token with the envelope, and creates nothing', async () => {
      const email = fresh('expired');
      await signUp(t.app, email);
      const token = tokenIn(await smtp.mailTo(email));
      assert.ok(token !== undefined);
      await identityDb(t.deps.database.db)
        .updateTable('pending_sign_ups')
        .set({ expires_at: new Date(Date.now() - 1_000) })
        .where('email', '=', email)
        .execute();
      const response = await verify(t.app, token);
      assert.equal(response.statusCode, 400);
      assert.equal(response.json().error.code, 'SIGN_UP_TOKEN_INVALID');
      const users = await t.deps.database.db
        .selectFrom('users')
        .select('id')
        .where('email', '=', email)
        .execute();
      assert.equal(users.length, 0);
    });

    it('answers a taken address like a new one and mails its owner a notice instead', async () => {
      const owner = fresh('owner');
      const admin = await firstAdmin(t);
      const made = await t.app.inject({
        method: 'POST',
        url: '/v1/admin/users',
        headers: admin.headers,
        payload: { email: owner, password: PASSWORD, name: 'Owner' },
      });
      assert.equal(made.statusCode, 201, made.body);

      const newcomer = fresh('newcomer');
      const forNew = await signUp(t.app, newcomer, 'an attacker password');
      const forTaken = await signUp(t.app, owner, 'an attacker password');
      assert.deepEqual(observable(forTaken), observable(forNew));

      const notice = await smtp.mailTo(owner);
      assert.match(notice.text, /tried to sign up/);
      assert.equal(tokenIn(notice), undefined, 'a notice carries no token');
      await login(t.app, owner);
      assert.ok(tokenIn(await smtp.mailTo(newcomer)) !== undefined);
    });

    it('reads a replaced SMTP password file at the next mail, without a restart', async () => {
      // Replaced by rename, as Kubernetes updates a mounted secret.
      credentials.pass = 'a rotated smtp password';
      const next = join(secretsDir, 'smtp-password.next');
      writeFileSync(next, `${credentials.pass}\n`, { mode: 0o600 });
      renameSync(next, passwordFile);
      const email = fresh('rotated');
      await signUp(t.app, email);
      assert.ok(tokenIn(await smtp.mailTo(email)) !== undefined);
    });
  });
}

/** An instance admin of the app: the first verified account, made on demand. */
async function firstAdmin(t: IdentityTestApp) {
  const admin = await t.deps.database.db
    .selectFrom('users')
    .select('email')
    .where('is_instance_admin', '=', true)
    .executeTakeFirstOrThrow();
  return login(t.app, admin.email);
}
