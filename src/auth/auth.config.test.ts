import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../platform/config.js';

const SMTP = {
  SWITCHYARD_SMTP_URL: 'smtp://mailer@127.0.0.1:2525',
  SWITCHYARD_MAIL_FROM: 'switchyard@example.com',
};

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems.join('\n');
  }
  assert.fail('the configuration was accepted');
}

describe('sign-up and retention configuration', () => {
  it('opens sign-up without mail and verifies addresses once SMTP is configured', () => {
    assert.equal(loadConfig({}).auth.signUp.mode, 'open');
    const withMail = loadConfig(SMTP).auth;
    assert.equal(withMail.signUp.mode, 'verify');
    assert.equal(withMail.smtp?.from, 'switchyard@example.com');
    assert.equal(loadConfig({ ...SMTP, SWITCHYARD_SIGN_UP: 'closed' }).auth.signUp.mode, 'closed');
    assert.deepEqual(loadConfig({}).auth.retention, {
      days: 7,
      signInFailureHours: 24,
      batchSize: 1_000,
      everyMinutes: 15,
    });
  });

  it('takes the SMTP password from a file only, never the URL or a plain variable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-smtp-config-'));
    try {
      const file = join(dir, 'password');
      writeFileSync(file, 'from a file\n');
      const config = loadConfig({ ...SMTP, SWITCHYARD_SMTP_PASSWORD_FILE: file });
      assert.equal(config.auth.smtp?.passwordFile, file);
      assert.ok(!JSON.stringify(config).includes('from a file'), 'the password is not held');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match(
      problemsOf({ ...SMTP, SWITCHYARD_SMTP_PASSWORD: 'plain' }),
      /SWITCHYARD_SMTP_PASSWORD: not read from the environment/,
    );
    assert.match(
      problemsOf({ ...SMTP, SWITCHYARD_SMTP_URL: 'smtp://user:secret@127.0.0.1:2525' }),
      /SWITCHYARD_SMTP_URL: must not contain a password/,
    );
  });

  it('reports every sign-up problem together', () => {
    const text = problemsOf({
      SWITCHYARD_SIGN_UP: 'verify',
      SWITCHYARD_SIGN_UP_TOKEN_TTL_SECONDS: '5',
      SWITCHYARD_IDENTITY_PURGE_EVERY_MINUTES: '0',
      SWITCHYARD_IDENTITY_PURGE_BATCH_SIZE: '1',
    });
    assert.match(text, /SWITCHYARD_SIGN_UP: verify needs outbound mail/);
    assert.match(text, /SWITCHYARD_SIGN_UP_TOKEN_TTL_SECONDS: expected an integer from 300/);
    assert.match(text, /SWITCHYARD_IDENTITY_PURGE_EVERY_MINUTES: expected an integer from 1/);
    assert.match(text, /SWITCHYARD_IDENTITY_PURGE_BATCH_SIZE: expected an integer from 10/);
    assert.match(
      problemsOf({ SWITCHYARD_SMTP_URL: 'http://127.0.0.1', SWITCHYARD_MAIL_FROM: 'a@b.c' }),
      /SWITCHYARD_SMTP_URL: expected a smtp: or smtps: URL/,
    );
    assert.match(
      problemsOf({ SWITCHYARD_SMTP_URL: 'smtp://127.0.0.1' }),
      /SWITCHYARD_MAIL_FROM: required/,
    );
  });
});
