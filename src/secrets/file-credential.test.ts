import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { knownSecrets, REDACTED } from '../platform/known-secrets.js';
import { FileCredential, gitCredentialFor, gitCredentialIn } from './file-credential.js';

describe('credentials from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-cred-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses a rewritten file on the next read, without a restart', () => {
    const path = join(dir, 'vault-token');
    writeFileSync(path, 'token-one\n');
    const credential = new FileCredential(path);
    assert.equal(credential.read(), 'token-one');
    writeFileSync(path, 'token-two-longer\n');
    assert.equal(credential.read(), 'token-two-longer');
  });

  it('makes every value it reads, and every token of a git-credentials file, a known secret', () => {
    const path = join(dir, 'rotating-token');
    writeFileSync(path, 'first-token-value\n');
    const credential = new FileCredential(path);
    credential.read();
    writeFileSync(path, 'second-token-value\n');
    credential.read();
    // The old one may still be in use somewhere (a running clone); both stay hidden.
    assert.equal(
      knownSecrets.scrub('saw first-token-value and second-token-value'),
      `saw ${REDACTED} and ${REDACTED}`,
    );
    gitCredentialIn('https://bot:other-host-token@gitlab.com', 'https://github.com/acme/web.git');
    assert.equal(knownSecrets.scrub('other-host-token'), REDACTED);
  });

  it('follows a file replaced by rename, as mounted secrets are', () => {
    const path = join(dir, 'mounted');
    writeFileSync(path, 'first');
    const credential = new FileCredential(path);
    assert.equal(credential.read(), 'first');
    writeFileSync(join(dir, 'mounted.new'), 'second');
    renameSync(join(dir, 'mounted.new'), path);
    assert.equal(credential.read(), 'second');
  });

  it('gives a repository the credential of its own host only', () => {
    const path = join(dir, 'git-credentials');
    writeFileSync(
      path,
      '# platform git tokens\nhttps://bot:ghp%2Fone@github.com\nhttps://ci:glpat-two@gitlab.com\n',
    );
    const file = new FileCredential(path);
    assert.deepEqual(gitCredentialFor(file, 'https://github.com/acme/web.git'), {
      username: 'bot',
      password: 'ghp/one',
    });
    assert.deepEqual(gitCredentialFor(file, 'https://gitlab.com/acme/api'), {
      username: 'ci',
      password: 'glpat-two',
    });
    assert.equal(gitCredentialFor(file, 'https://bitbucket.org/acme/x'), undefined);
    assert.equal(gitCredentialFor(file, '/srv/git/local-repo'), undefined);

    writeFileSync(path, 'https://bot:rotated-token@github.com\n');
    assert.equal(
      gitCredentialFor(file, 'https://github.com/acme/web.git')?.password,
      'rotated-token',
    );
  });

  it('names the file, never its content, when it cannot be read', () => {
    const credential = new FileCredential(join(dir, 'missing'));
    assert.throws(() => credential.read(), /credential file .*missing cannot be read/);
  });
});
