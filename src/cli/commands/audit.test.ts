import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { credentialsPath, findCredentials } from '../credentials.js';
import { cliFor, registerThroughCli, type CliRunner } from '../test-support/harness.js';

describe('switchyard audit', () => {
  let t: TestApp;
  let cli: CliRunner;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-audit-'));
    t = await createTestApp('pglite');
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    cli = await cliFor(t);
    await registerThroughCli(cli); // the first account: the instance admin
    assert.equal((await cli.run(['projects', 'create', 'audited'])).code, 0);
  });
  after(async () => {
    await cli.cleanup();
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('verify reports an intact chain and exits 0', async () => {
    await t.deps.audit.writer.flush();
    const result = await cli.run(['audit', 'verify']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^chain\s+intact$/m);
    const json = await cli.run(['audit', 'verify', '--json']);
    assert.equal(json.json<{ ok: boolean }>().ok, true);
  });

  it('verify-export checks an export offline, and names the first altered event', async () => {
    await t.deps.audit.writer.flush();
    const stored = await findCredentials(credentialsPath({ SWITCHYARD_CONFIG_DIR: cli.configDir }));
    const token = stored?.accessToken ?? '';
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const exported = await fetch(`${cli.apiUrl}/v1/audit-events/export?from=${from}&to=${to}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(exported.status, 200);
    const body = await exported.text();
    const jwks = await (await fetch(`${cli.apiUrl}/.well-known/jwks.json`)).text();
    const exportPath = join(dir, 'export.ndjson');
    const jwksPath = join(dir, 'jwks.json');
    await writeFile(exportPath, body);
    await writeFile(jwksPath, jwks);

    const good = await cli.run(['audit', 'verify-export', exportPath, '--jwks', jwksPath]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /^export\s+verified$/m);

    await writeFile(
      exportPath,
      body.replace('"action":"project.create"', '"action":"project.delete"'),
    );
    const bad = await cli.run(['audit', 'verify-export', exportPath, '--jwks', jwksPath]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /NOT VERIFIED/);
    assert.match(bad.stdout, /first break\s+event \d+: content_hash_mismatch/);

    const usage = await cli.run(['audit', 'verify-export', exportPath]);
    assert.equal(usage.code, 2);
  });
});
