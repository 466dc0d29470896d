import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { parseDotenv } from '../services/dotenv.js';
import { cliFor, registerThroughCli, type CliRunner } from './test-support/harness.js';

describe('switchyard client commands against a running API', () => {
  let t: TestApp;
  const runners: CliRunner[] = [];

  before(async () => {
    t = await createTestApp('pglite', { SWITCHYARD_ROLE: 'api' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await Promise.all(runners.map((runner) => runner.cleanup()));
    await t.close();
  });

  async function signedIn() {
    const cli = await cliFor(t);
    runners.push(cli);
    return { cli, ...(await registerThroughCli(cli)) };
  }

  async function serviceFor(cli: CliRunner, slug: string) {
    assert.equal((await cli.run(['projects', 'create', slug, '--slug', slug])).code, 0);
    const created = await cli.run([
      'services',
      'create',
      slug,
      'web',
      '--git',
      'https://github.com/acme/web.git',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    return created.json<{ id: string }>().id;
  }

  it('register stores the session in a 0600 credentials file that whoami and login use', async () => {
    const { cli, email, password } = await signedIn();
    const path = join(cli.configDir, 'credentials.json');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    assert.equal(stored['apiUrl'], cli.apiUrl);
    assert.ok(!JSON.stringify(stored).includes(password));

    const whoami = await cli.run(['whoami', '--json']);
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.equal(whoami.json()['email'], email);

    const login = await cli.run(['login', '--email', email, '--password-stdin'], {
      stdin: `${password}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /logged in to http:\/\/127\.0\.0\.1:\d+ as /);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.match((await cli.run(['whoami'])).stdout, new RegExp(`email\\s+${email}`));
  });

  it('exits 50 with AUTHENTICATION_FAILED for a wrong password, and stores nothing', async () => {
    const { email } = await signedIn();
    const fresh = await cliFor(t);
    runners.push(fresh);
    const result = await fresh.run(
      ['login', '--api', fresh.apiUrl, '--email', email, '--password-stdin'],
      {
        stdin: 'not the password\n',
      },
    );
    assert.equal(result.code, 50);
    assert.match(result.stderr, /AUTHENTICATION_FAILED/);
    assert.equal(result.stdout, '');
    await assert.rejects(stat(join(fresh.configDir, 'credentials.json')), { code: 'ENOENT' });
  });

  it('register on a taken address signs nothing in, and says why it could not', async () => {
    const { email } = await signedIn();
    const other = await cliFor(t);
    runners.push(other);
    const result = await other.run(
      ['register', '--api', other.apiUrl, '--email', email, '--name', 'Twin', '--password-stdin'],
      { stdin: 'a different long password\n' },
    );
    assert.equal(result.code, 50);
    assert.match(result.stderr, /signed up, but could not sign in/);
    await assert.rejects(stat(join(other.configDir, 'credentials.json')), { code: 'ENOENT' });
  });

  it('verify redeems nothing for an unknown token: exits 10 with SIGN_UP_TOKEN_INVALID', async () => {
    const cli = await cliFor(t);
    runners.push(cli);
    const unknown = await cli.run(['verify', '--api', cli.apiUrl, '--token-stdin'], {
      stdin: 'syv_never-issued-by-this-server\n',
    });
    assert.equal(unknown.code, 10);
    assert.match(unknown.stderr, /SIGN_UP_TOKEN_INVALID/);
    const empty = await cli.run(['verify', '--api', cli.apiUrl, '--token-stdin'], { stdin: '' });
    assert.equal(empty.code, 2);
  });

  it('exits 50 without a session, and accepts SWITCHYARD_TOKEN instead of one', async () => {
    const { cli } = await signedIn();
    const stored = JSON.parse(
      await readFile(join(cli.configDir, 'credentials.json'), 'utf8'),
    ) as Record<string, string>;
    const anonymous = await cliFor(t);
    runners.push(anonymous);

    const refused = await anonymous.run(['projects', 'list', '--api', anonymous.apiUrl]);
    assert.equal(refused.code, 50);
    assert.match(refused.stderr, /not logged in/);
    const token = stored['accessToken'] ?? '';
    const withToken = await anonymous.run(['whoami', '--json', '--api', anonymous.apiUrl], {
      env: { SWITCHYARD_TOKEN: token },
    });
    assert.equal(withToken.code, 0, withToken.stderr);
  });

  it('refreshes an expired access token once and stores the rotated pair', async () => {
    const { cli } = await signedIn();
    const path = join(cli.configDir, 'credentials.json');
    const before = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;

    await writeFile(
      path,
      JSON.stringify({ ...before, accessTokenExpiresAt: '2000-01-01T00:00:00.000Z' }),
    );
    assert.equal((await cli.run(['whoami'])).code, 0);
    const afterExpiry = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    assert.notEqual(afterExpiry['refreshToken'], before['refreshToken']);
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    // A token the server refuses (401) is renewed the same way, then the request retried.
    await writeFile(path, JSON.stringify({ ...afterExpiry, accessToken: 'not.a.jwt' }));
    const retried = await cli.run(['whoami', '--json']);
    assert.equal(retried.code, 0, retried.stderr);
  });

  it('logout revokes the session on the server and forgets the tokens', async () => {
    const { cli } = await signedIn();
    const path = join(cli.configDir, 'credentials.json');
    const { accessToken } = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;

    const logout = await cli.run(['logout']);
    assert.equal(logout.code, 0, logout.stderr);
    assert.equal((await cli.run(['whoami'])).code, 50);
    const reused = await cli.run(['whoami', '--token', accessToken ?? '']);
    assert.equal(reused.code, 50);
    assert.match(reused.stderr, /AUTHENTICATION_FAILED/);
  });

  it('creates and lists projects and services, as JSON and as tables', async () => {
    const { cli } = await signedIn();
    const slug = `shop-${Date.now()}`;
    const project = await cli.run(['projects', 'create', 'Shop Front', '--slug', slug, '--json']);
    assert.equal(project.code, 0, project.stderr);
    assert.equal(project.json()['slug'], slug);

    const projects = await cli.run(['projects', 'list', '--json']);
    assert.deepEqual(
      projects.json<{ data: Array<{ slug: string }> }>().data.map((p) => p.slug),
      [slug],
    );
    assert.match((await cli.run(['projects', 'get', slug])).stdout, /environments\s+.*production/);

    const created = await cli.run([
      'services',
      'create',
      slug,
      'web',
      '--git',
      'https://github.com/acme/web.git',
      '--branch',
      'main',
      '--health-path',
      '/healthz',
      '--instances',
      '2',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const service = created.json<{
      id: string;
      runtime: { instances: number; healthCheckPath: string };
    }>();
    assert.deepEqual([service.runtime.instances, service.runtime.healthCheckPath], [2, '/healthz']);

    const listed = await cli.run(['services', 'list', slug, '--json']);
    assert.deepEqual(
      listed.json<{ data: Array<{ id: string }> }>().data.map((s) => s.id),
      [service.id],
    );
    assert.match(
      (await cli.run(['services', 'list', slug])).stdout,
      /^NAME\s+BRANCH\s+INSTANCES[\s\S]*\nweb\s+main\s+2\s/,
    );
    const byName = await cli.run(['services', 'get', `${slug}/web`, '--json']);
    assert.equal(byName.json()['id'], service.id);
  });

  it('env set and env get keep tricky values byte-exact and merge with what is there', async () => {
    const { cli } = await signedIn();
    const serviceId = await serviceFor(cli, `vars-${Date.now()}`);
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w\n-----END PRIVATE KEY-----\n';
    const variables: Record<string, string> = {
      DOLLAR: 'a$HOME${X}$(whoami)`id`',
      QUOTES: `'single' "double"`,
      HASH: 'a # not a comment',
      EQ: 'k=v=w',
      SPACE: '  padded  ',
      BACKSLASH: 'C:\\new\\table\\',
      ESCAPES: 'tab\there\r\nline\\n',
      UNI: 'héllo 🌍',
      EMPTY: '',
      PEM: pem,
    };
    assert.equal((await cli.run(['env', 'set', serviceId, 'KEEP=me'])).code, 0);

    const set = await cli.run([
      'env',
      'set',
      serviceId,
      ...Object.entries(variables).map(([k, v]) => `${k}=${v}`),
    ]);
    assert.equal(set.code, 0, set.stderr);
    const got = await cli.run(['env', 'get', serviceId, '--json']);
    assert.deepEqual(got.json<{ variables: Record<string, string> }>().variables, {
      KEEP: 'me',
      ...variables,
    });

    // The human form is a .env file that reads back to the same values.
    const human = await cli.run(['env', 'get', serviceId]);
    const parsed = Object.fromEntries(
      parseDotenv(human.stdout).map((entry) => [entry.name, entry.value]),
    );
    assert.deepEqual(parsed, { KEEP: 'me', ...variables });
  });

  it('env import merges a .env file, or stdin given as -', async () => {
    const { cli } = await signedIn();
    const serviceId = await serviceFor(cli, `import-${Date.now()}`);
    const file = join(cli.configDir, 'app.env');
    await writeFile(
      file,
      '# settings\nexport PLAIN=hello world # comment\nSINGLE=\'$HOME stays\'\nMULTI="a\\nb"\n',
    );

    const imported = await cli.run(['env', 'import', serviceId, file, '--json']);
    assert.equal(imported.code, 0, imported.stderr);
    assert.deepEqual(imported.json()['names'], ['MULTI', 'PLAIN', 'SINGLE']);
    const fromStdin = await cli.run(['env', 'import', serviceId, '-'], {
      stdin: 'PLAIN=replaced\n',
    });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);

    const got = await cli.run(['env', 'get', serviceId, '--json']);
    assert.deepEqual(got.json()['variables'], {
      PLAIN: 'replaced',
      SINGLE: '$HOME stays',
      MULTI: 'a\nb',
    });
    const broken = await cli.run(['env', 'import', serviceId, '-'], {
      stdin: 'NOT AN ASSIGNMENT\n',
    });
    assert.equal(broken.code, 10);
    assert.match(broken.stderr, /ENV_VAR_INVALID/);
  });

  it('exits 2 with the usage for malformed command lines, before calling the API', async () => {
    const cli = await cliFor(t);
    runners.push(cli);
    const id = randomUUID();
    const cases = [
      ['frobnicate'],
      ['projects'],
      ['projects', 'create'],
      ['projects', 'list', '--no-such-flag'],
      ['services', 'create', 'p', 'web'],
      [
        'services',
        'create',
        'p',
        'web',
        '--git',
        'https://github.com/a/b.git',
        '--instances',
        'many',
      ],
      ['services', 'get', 'just-a-name'],
      ['env', 'set', id, 'SECRET:hunter2'],
      ['env', 'set', id, '1BAD=x'],
      ['login', '--email', 'a@example.com', '--password', 'hunter2'],
      ['login', '--email', 'a@example.com'],
      ['deploy', id],
      ['deploy', id, '--env', 'production', '--release', 'latest'],
      ['logs'],
      ['logs', id, '--deployment', id],
      ['builds', 'logs', 'not-an-id'],
    ];
    for (const argv of cases) {
      const result = await cli.run(argv);
      assert.equal(result.code, 2, `${argv.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, '', argv.join(' '));
      assert.ok(!result.stderr.includes('hunter2'), 'a mistyped secret is never echoed');
    }
    const help = await cli.run(['deploy', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: switchyard deploy <service> --env <environment>/);
    assert.match((await cli.run(['help'])).stdout, /client commands:[\s\S]*rollback/);
  });

  it('exits 10 and prints the API error code for an unknown service or project', async () => {
    const { cli } = await signedIn();
    const byId = await cli.run(['services', 'get', randomUUID()]);
    assert.equal(byId.code, 10);
    assert.match(byId.stderr, /SERVICE_NOT_FOUND: .*\(request id [\w-]+\)/);

    const slug = `known-${Date.now()}`;
    await serviceFor(cli, slug);
    const byName = await cli.run(['deploy', `${slug}/missing`, '--env', 'production']);
    assert.equal(byName.code, 10);
    assert.match(byName.stderr, /SERVICE_NOT_FOUND/);
    const project = await cli.run(['services', 'list', 'no-such-project']);
    assert.equal(project.code, 10);
    assert.match(project.stderr, /PROJECT_NOT_FOUND/);
  });

  it('deploy exits 10 RELEASE_UNAVAILABLE when nothing was built yet', async () => {
    const { cli } = await signedIn();
    const slug = `nobuild-${Date.now()}`;
    await serviceFor(cli, slug);
    const result = await cli.run(['deploy', `${slug}/web`, '--env', 'production', '--follow']);
    assert.equal(result.code, 10);
    assert.match(result.stderr, /RELEASE_UNAVAILABLE/);
    const status = await cli.run(['status', `${slug}/web`, '--env', 'production', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.json()['isLive'], false);
  });
});
