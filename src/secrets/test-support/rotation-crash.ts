import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTestDatabase } from '../../../test/support/database.js';
import type { RotationStep } from '../rotation-runner.js';
import { startLockboxApp } from './lockbox-app.js';
import { liveEnv, settled, type DeployedService } from './rotation-bench.js';

const CHILD = join(import.meta.dirname, 'rotation-crash-child.ts');

interface ChildReport extends DeployedService {
  secretUrl: string;
  rotationId: string;
}

/** Runs the crash child to its SIGKILL and returns what it reported before dying. */
async function crashChild(env: Record<string, string>): Promise<ChildReport> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const report: Partial<ChildReport> = {};
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => Object.assign(report, JSON.parse(line) as Partial<ChildReport>));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, sig) => resolve(sig)),
  );
  assert.equal(signal, 'SIGKILL', `the child should die by SIGKILL; stderr: ${stderr}`);
  assert.ok(
    report.rotationId !== undefined && report.serviceId !== undefined,
    'the child reported its rotation',
  );
  return report as ChildReport;
}

/**
 * Deploys and starts a rotation in a child process that SIGKILLs itself before `step`, then
 * starts Switchyard again on the same data and database and checks the rotation was rolled
 * back: the old version current and live, the workloads healthy.
 */
export async function crashAndRecover(
  backend: 'pglite' | 'postgres',
  step: RotationStep,
): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchyard-crash-'));
  const database = backend === 'postgres' ? await createTestDatabase('postgres') : undefined;
  try {
    const report = await crashChild({
      CHILD_DATA_DIR: dataDir,
      CRASH_BEFORE_STEP: step,
      ...(database?.url === undefined ? {} : { CHILD_DATABASE_URL: database.url }),
    });

    const t = await startLockboxApp(backend, {
      workers: true,
      dataDir,
      database: database ?? 'embedded',
    });
    try {
      const view = await settled(t.app, report.headers, report.rotationId, 45_000);
      assert.equal(view.state, 'rolled_back');
      assert.match(view.failureReason ?? '', /interrupted while (written|rolling|verifying)/);
      const secret = (
        await t.app.inject({ url: report.secretUrl, headers: report.headers })
      ).json();
      assert.equal(secret.currentVersion, 1);
      const versions = (
        await t.app.inject({ url: `${report.secretUrl}/versions`, headers: report.headers })
      ).json();
      assert.deepEqual(
        versions.data.map((v: { state: string }) => v.state),
        ['rolled_back', 'active'],
      );

      const status = (
        await t.app.inject({
          url: `/v1/services/${report.serviceId}/status?environment=production`,
          headers: report.headers,
        })
      ).json();
      assert.equal(status.isHealthy, true);
      assert.deepEqual(await liveEnv(t.app, t.deps, report), { SESSION_KEY: 'before-crash' });
    } finally {
      await t.close();
    }
  } finally {
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
