import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createTestDatabase } from '../../../test/support/database.js';
import { pidDirectory, reapOrphans } from '../../runtime/local/pid-files.js';
import type { RotationStep } from '../rotation-runner.js';
import { startLockboxApp, type LockboxApp } from './lockbox-app.js';
import { liveEnv, settled, type DeployedService } from './rotation-bench.js';

const CHILD = join(import.meta.dirname, 'rotation-crash-child.ts');

interface ChildReport extends DeployedService {
  secretUrl: string;
  rotationId: string;
  atStep: string;
}

interface RotationState {
  state: string;
  runner: string | null;
}

async function rotationRow(t: LockboxApp, id: string): Promise<RotationState> {
  return t.deps.database.db
    .withTables<{ secret_rotations: { id: string; state: string; runner: string | null } }>()
    .selectFrom('secret_rotations')
    .select(['state', 'runner'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

async function statusOf(t: LockboxApp, report: ChildReport) {
  const response = await t.app.inject({
    url: `/v1/services/${report.serviceId}/status?environment=production`,
    headers: report.headers,
  });
  return response.json<{ isHealthy: boolean; deployment: { id: string } | null }>();
}

/**
 * Two Switchyard processes on one PostgreSQL database, with their own data folders, as on two
 * machines. The child leads and runs a rotation; it stops just before `step`, while the test
 * starts the second process, then is SIGKILLed. Nothing restarts: the second process, once it
 * leads, must find the rotation's heartbeat expired and roll it back within seconds, the
 * previous version current and live, the workloads healthy.
 */
export async function takeOverFromKilledRunner(step: RotationStep): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-takeover-'));
  // Workload users (the tests run as root) pass through it to the data folders inside.
  chmodSync(dir, 0o711);
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir, { mode: 0o700 });
  const signingKey = generateKeyPairSync('ed25519').privateKey;
  writeFileSync(join(keysDir, 'jwt.pem'), signingKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(keysDir, 'master.key'), randomBytes(32).toString('base64'), { mode: 0o600 });
  const sharedKeys = {
    SWITCHYARD_JWT_PRIVATE_KEY_PATH: join(keysDir, 'jwt.pem'),
    SWITCHYARD_MASTER_KEY_PATH: join(keysDir, 'master.key'),
  };
  const database = await createTestDatabase('postgres');
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '',
      CHILD_DATA_DIR: join(dir, 'a'),
      CHILD_DATABASE_URL: database.url ?? '',
      CRASH_BEFORE_STEP: step,
      CHILD_RUNNER_HOST: 'another-machine',
      CHILD_KEYS_DIR: keysDir,
      CHILD_WAIT_BEFORE_KILL: 'true',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  let t: LockboxApp | undefined;
  try {
    const report: Partial<ChildReport> = {};
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        Object.assign(report, JSON.parse(line) as Partial<ChildReport>);
        if (report.atStep !== undefined) resolve();
      });
      void exited.then(() => reject(new Error(`the child ended early; stderr: ${stderr}`)));
    });
    const run = report as ChildReport;

    t = await startLockboxApp('postgres', {
      workers: true,
      dataDir: join(dir, 'b'),
      database,
      env: sharedKeys,
    });
    // While the child lives (paused, but heartbeating), its rotation stays its own.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const held = await rotationRow(t, run.rotationId);
    assert.match(held.runner ?? '', /^another-machine:/);
    assert.notEqual(held.state, 'rolled_back');
    const before = await statusOf(t, run);

    child.stdin.write('go\n');
    assert.equal(await exited, 'SIGKILL', `the child should die by SIGKILL; stderr: ${stderr}`);
    const killedAt = Date.now();

    const view = await settled(t.app, run.headers, run.rotationId, 30_000);
    const tookMs = Date.now() - killedAt;
    assert.equal(view.state, 'rolled_back');
    assert.match(view.failureReason ?? '', /interrupted while (written|rolling|verifying)/);
    assert.ok(tookMs < 20_000, `settled ${tookMs} ms after the kill`);
    const taken = await rotationRow(t, run.rotationId);
    assert.doesNotMatch(taken.runner ?? '', /^another-machine:/, 'the live process took it over');

    const secret = (await t.app.inject({ url: run.secretUrl, headers: run.headers })).json();
    assert.equal(secret.currentVersion, 1);
    const versions = (
      await t.app.inject({ url: `${run.secretUrl}/versions`, headers: run.headers })
    ).json();
    assert.deepEqual(
      versions.data.map((v: { state: string }) => v.state),
      ['rolled_back', 'active'],
    );
    const after = await statusOf(t, run);
    assert.equal(after.isHealthy, true);
    // Killed before any workload was touched, the deployment live before is live throughout.
    if (step === 'roll') {
      assert.equal(before.deployment?.id, run.deploymentId);
      assert.equal(after.deployment?.id, run.deploymentId);
    }
    assert.deepEqual(await liveEnv(t.app, t.deps, run), { SESSION_KEY: 'before-crash' });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await t?.close();
    // The killed child's workloads outlive it; end them.
    await reapOrphans(
      pidDirectory(join(dir, 'a', 'runtime')),
      new Set(),
      pino({ level: 'silent' }),
      500,
    );
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
