import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from './errors.js';
import {
  checkGitUrl,
  checkOutboundUrl,
  isBlockedAddress,
  redactUrl,
  systemResolver,
  type Resolver,
  type UrlPolicy,
} from './url-guard.js';

// Fake DNS: every name the tests use, and nothing ever reaches a real resolver.
const ZONE: Record<string, string[]> = {
  'github.com': ['140.82.112.3'],
  'gitlab.com': ['172.65.251.78'],
  'a.b.corp.example': ['93.184.215.14'],
  'v6public.example': ['2606:4700::1111'],
  'git.corp.example': ['10.1.2.3'],
  'metadata.example': ['169.254.169.254'],
  'mixed.example': ['140.82.112.4', '127.0.0.1'],
  'mapped.example': ['::ffff:127.0.0.1'],
  'nat64.example': ['64:ff9b::a00:1'],
  'ula.example': ['fd00::1'],
  'cgnat.example': ['100.64.1.1'],
  'empty.example': [],
};

function fakeResolver(lookups: string[] = []): Resolver {
  return async (hostname) => {
    lookups.push(hostname);
    const addresses = ZONE[hostname];
    if (addresses === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return addresses;
  };
}

const BASE: UrlPolicy = {
  allowedGitHosts: [
    'github.com',
    'gitlab.com',
    '*.corp.example',
    ...['v6public.example', 'metadata.example', 'mixed.example', 'mapped.example'],
    ...['nat64.example', 'ula.example', 'cgnat.example', 'empty.example'],
    ...['127.0.0.1', '169.254.169.254', '::1', 'fe80::1', '2606:4700::1111'],
  ],
  allowLocalGit: false,
  allowPrivateNetworks: false,
};
const LOCAL: Partial<UrlPolicy> = { allowLocalGit: true };
const PRIVATE: Partial<UrlPolicy> = { allowPrivateNetworks: true };
// The syntax table is about URLs, not callers: local paths there are named by an admin.
const ADMIN = { isInstanceAdmin: true };

interface Row {
  raw: string;
  policy?: Partial<UrlPolicy>;
  /** The accepted URL (and kind), or the refusal reason. */
  accept?: { url: string; kind: 'https' | 'ssh' | 'local'; host?: string };
  reason?: string;
  /** Text that must not appear in the error message. */
  secret?: string;
}

const https = (url: string, host: string) => ({ url, kind: 'https' as const, host });
const ssh = (url: string, host: string) => ({ url, kind: 'ssh' as const, host });

// prettier-ignore -- one row per line keeps the table readable
const ROWS: Row[] = [
  // Accepted
  {
    raw: 'https://github.com/owner/repo.git',
    accept: https('https://github.com/owner/repo.git', 'github.com'),
  },
  {
    raw: 'https://GitHub.com/Owner/Repo',
    accept: https('https://github.com/Owner/Repo', 'github.com'),
  },
  {
    raw: 'https://github.com:8443/o/r.git',
    accept: https('https://github.com:8443/o/r.git', 'github.com'),
  },
  { raw: 'https://github.com:443/o/r', accept: https('https://github.com/o/r', 'github.com') },
  {
    raw: 'https://a.b.corp.example/x/y.git',
    accept: https('https://a.b.corp.example/x/y.git', 'a.b.corp.example'),
  },
  {
    raw: 'https://v6public.example/x.git',
    accept: https('https://v6public.example/x.git', 'v6public.example'),
  },
  {
    raw: 'ssh://git@github.com/owner/repo.git',
    accept: ssh('ssh://git@github.com/owner/repo.git', 'github.com'),
  },
  {
    raw: 'ssh://git@GITHUB.com:2222/o/r.git',
    accept: ssh('ssh://git@github.com:2222/o/r.git', 'github.com'),
  },
  {
    raw: 'git@github.com:owner/repo.git',
    accept: ssh('git@github.com:owner/repo.git', 'github.com'),
  },
  {
    raw: 'git@gitlab.com:group/sub/repo',
    accept: ssh('git@gitlab.com:group/sub/repo', 'gitlab.com'),
  },
  {
    raw: 'git@github.com:1234/repo.git',
    accept: ssh('git@github.com:1234/repo.git', 'github.com'),
  },
  {
    raw: 'git@[2606:4700::1111]:o/r.git',
    accept: ssh('git@[2606:4700::1111]:o/r.git', '2606:4700::1111'),
  },
  { raw: '/srv/git/repo.git', policy: LOCAL, accept: { url: '/srv/git/repo.git', kind: 'local' } },
  {
    raw: 'file:///srv/git/repo.git',
    policy: LOCAL,
    accept: { url: 'file:///srv/git/repo.git', kind: 'local' },
  },
  {
    raw: 'https://git.corp.example/x.git',
    policy: PRIVATE,
    accept: https('https://git.corp.example/x.git', 'git.corp.example'),
  },
  { raw: 'https://[::1]/x.git', policy: PRIVATE, accept: https('https://[::1]/x.git', '::1') },
  {
    raw: 'ssh://git@127.0.0.1:2222/x.git',
    policy: PRIVATE,
    accept: ssh('ssh://git@127.0.0.1:2222/x.git', '127.0.0.1'),
  },

  // Refused: scheme and shape
  { raw: '', reason: 'empty' },
  { raw: 'http://github.com/owner/repo', reason: 'insecure_scheme' },
  { raw: 'git://github.com/owner/repo', reason: 'insecure_scheme' },
  { raw: 'ftp://github.com/owner/repo', reason: 'unsupported_scheme' },
  { raw: 'git+ssh://git@github.com/o/r', reason: 'unsupported_scheme' },
  { raw: 'ext::ssh-evil', reason: 'remote_helper' },
  { raw: 'fd::17/foo', reason: 'remote_helper' },
  { raw: 'file:///srv/git/repo.git', reason: 'local_not_allowed' },
  { raw: '/srv/git/repo.git', reason: 'local_not_allowed' },
  { raw: './repo', policy: LOCAL, reason: 'relative_path' },
  { raw: 'repo', policy: LOCAL, reason: 'relative_path' },
  { raw: 'file://localhost/srv/repo', policy: LOCAL, reason: 'relative_path' },
  { raw: 'https:///github.com/o/r', reason: 'missing_host' },
  { raw: 'https://github.com/', reason: 'missing_path' },
  { raw: 'git@github.com:', reason: 'missing_path' },
  { raw: 'https://github.com/o/r?private_token=abc', reason: 'query_not_allowed' },
  { raw: 'https://github.com/o/r#main', reason: 'query_not_allowed' },
  { raw: 'https://github.com:0/o/r', reason: 'invalid_port' },
  { raw: 'ssh://git@github.com:99999/o/r', reason: 'invalid_port' },
  { raw: 'https://github_com.example/o/r', reason: 'invalid_host' },
  { raw: 'git@github.com:o/r;touch', reason: 'invalid_path' },
  { raw: 'https://github.com\\@evil.example/o/r', reason: 'invalid_character' },

  // Refused: credentials (and the secret is not echoed)
  { raw: 'https://user:hunter2@github.com/o/r', reason: 'credentials_in_url', secret: 'hunter2' },
  {
    raw: 'https://ghp_abcdef123456@github.com/o/r',
    reason: 'credentials_in_url',
    secret: 'ghp_abc',
  },
  { raw: 'ssh://git:hunter2@github.com/o/r', reason: 'credentials_in_url', secret: 'hunter2' },
  { raw: 'git:hunter2@github.com:o/r.git', reason: 'credentials_in_url', secret: 'hunter2' },

  // Refused: option injection, control characters
  { raw: '--upload-pack=evil', reason: 'option_injection' },
  { raw: 'ssh://-oProxyCommand=evil/x', reason: 'option_injection' },
  { raw: 'git@-oProxyCommand=evil:repo', reason: 'option_injection' },
  { raw: 'ssh://-oProxyCommand=evil@github.com/x', reason: 'option_injection' },
  { raw: 'git@github.com:-repo', reason: 'option_injection' },
  { raw: 'https://github.com/o/r\n', reason: 'control_characters' },
  { raw: 'https://github.com/o/r x', reason: 'control_characters' },
  { raw: 'https://github.com/o/\tr', reason: 'control_characters' },
  { raw: 'https://github.com/o/\u202er', reason: 'control_characters' },
  { raw: 'https://github.com/o/%0Ar', reason: 'control_characters' },

  // Refused: host policy and IP literals
  { raw: 'https://evil.example/o/r', reason: 'host_not_allowed' },
  { raw: 'https://github.com.evil.example/o/r', reason: 'host_not_allowed' },
  { raw: 'https://corp.example/o/r', reason: 'host_not_allowed' },
  { raw: 'git@evil.example:o/r.git', reason: 'host_not_allowed' },
  { raw: 'https://127.0.0.1/o/r', reason: 'blocked_address' },
  { raw: 'https://0x7f.1/o/r', reason: 'blocked_address' },
  { raw: 'https://2130706433/o/r', reason: 'blocked_address' },
  { raw: 'git@127.1:o/r.git', reason: 'blocked_address' },
  { raw: 'https://169.254.169.254/latest/meta-data', reason: 'blocked_address' },
  { raw: 'https://[::1]/o/r', reason: 'blocked_address' },
  { raw: 'https://[::ffff:127.0.0.1]/o/r', reason: 'blocked_address' },
  { raw: 'ssh://git@[fe80::1]/o/r', reason: 'blocked_address' },
  { raw: 'git@[::1]:o/r.git', reason: 'blocked_address' },

  // Refused: names that resolve somewhere private
  { raw: 'https://git.corp.example/o/r.git', reason: 'blocked_address' },
  { raw: 'https://metadata.example/o/r', reason: 'blocked_address' },
  { raw: 'https://mixed.example/o/r', reason: 'blocked_address' },
  { raw: 'https://mapped.example/o/r', reason: 'blocked_address' },
  { raw: 'git@nat64.example:o/r.git', reason: 'blocked_address' },
  { raw: 'https://ula.example/o/r', reason: 'blocked_address' },
  { raw: 'ssh://git@cgnat.example/o/r', reason: 'blocked_address' },
  { raw: 'https://empty.example/o/r', reason: 'unresolvable_host' },
  { raw: 'https://nxdomain.corp.example/o/r', reason: 'unresolvable_host' },
];

function assertRejected(error: unknown, code: string, reason: string, secret?: string): true {
  assert.ok(error instanceof AppError, `expected AppError, got ${String(error)}`);
  assert.equal(error.code, code);
  assert.deepEqual(error.details, { reason });
  if (secret !== undefined) assert.ok(!error.message.includes(secret), error.message);
  return true;
}

describe('checkGitUrl', () => {
  test('the table has at least 40 rows', () => {
    assert.ok(ROWS.length >= 40);
  });

  for (const row of ROWS) {
    const policy = { ...BASE, ...row.policy };
    const label = JSON.stringify(row.raw) + (row.policy === undefined ? '' : ' (opted in)');
    const { accept, reason } = row;

    if (accept !== undefined) {
      test(`accepts ${label}`, async () => {
        const checked = await checkGitUrl(row.raw, policy, fakeResolver(), ADMIN);
        assert.deepEqual(checked, accept);
      });
    } else if (reason !== undefined) {
      test(`refuses ${label} as ${reason}`, async () => {
        await assert.rejects(checkGitUrl(row.raw, policy, fakeResolver(), ADMIN), (error) =>
          assertRejected(error, 'GIT_URL_REJECTED', reason, row.secret),
        );
      });
    }
  }

  test('does not resolve IP literals, local paths or hosts when private networks are allowed', async () => {
    const lookups: string[] = [];
    await checkGitUrl('git@[2606:4700::1111]:o/r.git', BASE, fakeResolver(lookups));
    const local = { ...BASE, allowLocalGit: true };
    await checkGitUrl('/srv/repo.git', local, fakeResolver(lookups), ADMIN);
    await checkGitUrl('https://git.corp.example/r', { ...BASE, ...PRIVATE }, fakeResolver(lookups));
    assert.deepEqual(lookups, []);
  });

  test('resolves the normalised host, not the raw text', async () => {
    const lookups: string[] = [];
    await checkGitUrl('https://GITHUB.COM/o/r', BASE, fakeResolver(lookups));
    assert.deepEqual(lookups, ['github.com']);
  });

  test('names the host in the allow-list message', async () => {
    await assert.rejects(checkGitUrl('https://evil.example/o/r', BASE, fakeResolver()), {
      message: 'git host "evil.example" is not on the allowed host list',
    });
  });
});

describe('isBlockedAddress', () => {
  // prettier-ignore
  const blocked = [
    '0.0.0.0', '0.1.2.3', '10.0.0.1', '100.64.0.1', '100.127.255.255', '127.0.0.1',
    '127.255.255.254', '169.254.169.254', '172.16.0.1', '172.31.255.255', '192.168.1.1',
    '224.0.0.1', '239.255.255.250', '255.255.255.255', '::', '::1', 'fc00::1', 'fd12:3456::1',
    'fe80::1', 'fe80::1%eth0', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1',
    '::ffff:169.254.169.254', '::ffff:0:7f00:1', '64:ff9b::7f00:1', '64:ff9b::a9fe:a9fe',
    '64:ff9b:1::1', '2002:7f00:1::1', '2001::1', '2001:db8::1', '::127.0.0.1', 'not-an-ip', '',
  ];
  // prettier-ignore
  const allowed = [
    '8.8.8.8', '140.82.112.3', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0',
    '2606:4700::1111', '2a00:1450:4001::1', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1',
  ];

  for (const ip of blocked) {
    test(`blocks ${JSON.stringify(ip)}`, () => assert.equal(isBlockedAddress(ip), true));
  }
  for (const ip of allowed) {
    test(`allows ${ip}`, () => assert.equal(isBlockedAddress(ip), false));
  }
});

describe('checkOutboundUrl', () => {
  const policy = { allowPrivateNetworks: false };

  test('returns the parsed URL for a public https host, query included', async () => {
    const url = await checkOutboundUrl('https://github.com/hook?x=1', policy, fakeResolver());
    assert.equal(url.href, 'https://github.com/hook?x=1');
  });

  test('refuses http unless allowHttp is set', async () => {
    await assert.rejects(checkOutboundUrl('http://github.com/hook', policy, fakeResolver()), (e) =>
      assertRejected(e, 'OUTBOUND_URL_REJECTED', 'insecure_scheme'),
    );
    const url = await checkOutboundUrl(
      'http://github.com/h',
      { ...policy, allowHttp: true },
      fakeResolver(),
    );
    assert.equal(url.protocol, 'http:');
  });

  const refusals: Array<[string, string]> = [
    ['ftp://github.com/x', 'unsupported_scheme'],
    ['https://user:hunter2@github.com/x', 'credentials_in_url'],
    ['https://127.0.0.1:8080/x', 'blocked_address'],
    ['https://[::ffff:169.254.169.254]/x', 'blocked_address'],
    ['https://metadata.example/x', 'blocked_address'],
    ['https://mixed.example/x', 'blocked_address'],
    ['https://nxdomain.example/x', 'unresolvable_host'],
    ['https:///github.com/x', 'missing_host'],
    ['not a url', 'control_characters'],
    ['nonsense', 'invalid_url'],
  ];
  for (const [raw, reason] of refusals) {
    test(`refuses ${JSON.stringify(raw)} as ${reason}`, async () => {
      await assert.rejects(checkOutboundUrl(raw, policy, fakeResolver()), (e) =>
        assertRejected(e, 'OUTBOUND_URL_REJECTED', reason, 'hunter2'),
      );
    });
  }

  test('allows private targets, without DNS, when the operator opts in', async () => {
    const lookups: string[] = [];
    const opted = { allowPrivateNetworks: true, allowHttp: true };
    const url = await checkOutboundUrl(
      'http://git.corp.example:9000/x',
      opted,
      fakeResolver(lookups),
    );
    assert.equal(url.host, 'git.corp.example:9000');
    assert.deepEqual(lookups, []);
  });
});

describe('redactUrl', () => {
  test('masks userinfo, query values and fragments of URLs', () => {
    assert.equal(
      redactUrl('https://user:pw@github.com/o/r?token=abc&x=1#frag'),
      'https://***@github.com/o/r?token=***&x=***#***',
    );
  });

  test('keeps URLs without secrets as they are', () => {
    assert.equal(redactUrl('https://github.com/o/r.git'), 'https://github.com/o/r.git');
    assert.equal(redactUrl('git@github.com:o/r.git'), 'git@github.com:o/r.git');
    assert.equal(redactUrl('/srv/git/r.git'), '/srv/git/r.git');
  });

  test('masks credentials in scp-style and unparseable text', () => {
    assert.equal(redactUrl('git:pw@github.com:o/r.git'), '***@github.com:o/r.git');
    assert.equal(redactUrl('https://u:pw@[bad/x?t=1'), 'https://***@[bad/x?***');
  });

  test('strips control characters so a URL cannot forge log lines', () => {
    assert.equal(redactUrl('https://github.com/o\n/r'), 'https://github.com/o/r');
  });
});

describe('systemResolver', () => {
  test('returns an IP literal as itself without a DNS query', async () => {
    assert.deepEqual(await systemResolver('127.0.0.1'), ['127.0.0.1']);
  });
});

describe('checkGitUrl with local repositories', () => {
  // On disk: roots/allowed/repo, outside/repo, data/ (the data folder) and links out of the
  // allowed root, one to outside/repo and one into data/.
  let top = '';
  let policy: UrlPolicy = BASE;
  const member = { isInstanceAdmin: false };
  const at = (path: string) => path.replaceAll('$', top);

  before(async () => {
    top = await realpath(await mkdtemp(join(tmpdir(), 'switchyard-local-git-')));
    for (const dir of ['roots/allowed/repo', 'outside/repo', 'data/keys', 'data/repo']) {
      await mkdir(join(top, dir), { recursive: true });
    }
    await symlink(join(top, 'outside/repo'), join(top, 'roots/allowed/escape'));
    await symlink(join(top, 'data'), join(top, 'roots/allowed/into-data'));
    await symlink(join(top, 'roots/allowed/repo'), join(top, 'outside/into-root'));
    policy = {
      ...BASE,
      allowLocalGit: true,
      localGitRoots: [join(top, 'roots/allowed')],
      dataDir: join(top, 'data'),
    };
  });

  after(async () => {
    await rm(top, { recursive: true, force: true });
  });

  // $ is the fixture folder. `admin` rows are named by an instance admin, the rest by a member.
  const rows: Array<{ raw: string; admin?: boolean; reason?: string }> = [
    { raw: '$/roots/allowed/repo' },
    { raw: 'file://$/roots/allowed/repo' },
    { raw: '$/roots/allowed/repo/' },
    { raw: '$/roots/allowed/not-yet-created' },
    { raw: '$/outside/../roots/allowed/repo' },
    // A link from outside into the root names a repository inside it: judged by where it leads.
    { raw: '$/outside/into-root' },
    { raw: '$/outside/repo', reason: 'outside_local_roots' },
    { raw: 'file://$/outside/repo', reason: 'outside_local_roots' },
    { raw: '$/roots/allowed/../../outside/repo', reason: 'outside_local_roots' },
    { raw: '$/roots/allowed/escape', reason: 'outside_local_roots' },
    { raw: '$/roots/allowed/escape/../repo', reason: 'outside_local_roots' },
    { raw: '$/roots/allowed-sibling', reason: 'outside_local_roots' },
    { raw: '/', reason: 'outside_local_roots' },
    { raw: '/work/main', reason: 'outside_local_roots' },
    { raw: '$/roots/allowed/into-data', reason: 'inside_data_folder' },
    { raw: '$/roots/allowed/into-data/repo', reason: 'inside_data_folder' },
    { raw: '$/data', reason: 'inside_data_folder' },
    { raw: '$/data/keys', reason: 'inside_data_folder' },
    { raw: 'file://$/data/repo', reason: 'inside_data_folder' },
    { raw: '$/roots/allowed/../../data/repo', reason: 'inside_data_folder' },
    { raw: '$/outside/repo', admin: true },
    { raw: '/work/main', admin: true },
    { raw: '$/data/repo', admin: true, reason: 'inside_data_folder' },
    { raw: '$/roots/allowed/into-data', admin: true, reason: 'inside_data_folder' },
    { raw: 'file://$/data/../data/keys', admin: true, reason: 'inside_data_folder' },
  ];

  for (const row of rows) {
    const who = row.admin === true ? 'an admin' : 'a member';
    const caller = { isInstanceAdmin: row.admin === true };
    const outcome = row.reason === undefined ? 'accepts' : `refuses (${row.reason})`;
    test(`${outcome} ${row.raw} named by ${who}`, async () => {
      const raw = at(row.raw);
      const checking = checkGitUrl(raw, policy, fakeResolver(), caller);
      if (row.reason === undefined) {
        assert.deepEqual(await checking, { url: raw, kind: 'local' });
        return;
      }
      await assert.rejects(checking, (error) =>
        assertRejected(error, 'GIT_LOCAL_PATH_REJECTED', row.reason ?? ''),
      );
    });
  }

  test('refuses percent-encoded file:// URLs, which git would decode', async () => {
    await assert.rejects(
      checkGitUrl(at('file://$/d%61ta/repo'), policy, fakeResolver(), member),
      (error) => assertRejected(error, 'GIT_URL_REJECTED', 'encoded_path'),
    );
  });

  test('refuses every local path to a member when no roots are configured', async () => {
    const noRoots = { ...policy, localGitRoots: [] };
    await assert.rejects(
      checkGitUrl(at('$/roots/allowed/repo'), noRoots, fakeResolver(), member),
      (error) => assertRejected(error, 'GIT_LOCAL_PATH_REJECTED', 'outside_local_roots'),
    );
  });
});
