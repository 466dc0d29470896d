import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { createTestDatabase, testBackends } from '../../test/support/database.js';
import type { RotationStep } from './rotation-runner.js';
import { startLockboxApp } from './test-support/lockbox-app.js';
import { liveEnv, settled, type DeployedService } from './test-support/rotation-bench.js';

const CHILD = join(import.meta.dirname, 'test-support', 'rotation-crash-child.ts');

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

// Before `roll`: the new version is written, no workload touched. Before `verify`: new
// instances run the new version and the old ones are gone — the hardest moment to lose.
const CASES: Array<{ backend: 'pglite' | 'postgres'; step: RotationStep }> = [
  { backend: 'pglite', step: 'verify' },
  { backend: 'postgres', step: 'verify' },
  { backend: 'postgres', step: 'roll' },
];

describe('secret rotation survives a SIGKILL of its process', () => {
  for (const { backend, step } of CASES.filter((c) => testBackends().includes(c.backend))) {
    it(`rolls back on restart after a SIGKILL before ${step} on ${backend}`, async () => {
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
    });
  }
});
