/**
 * A Switchyard process that deploys a service with a secret, starts rotating it, and
 * SIGKILLs itself just before the step named by CRASH_BEFORE_STEP — a crash at the worst
 * moment, with no chance to clean up. It prints one JSON line with the ids first.
 *
 * Env: CHILD_DATA_DIR (shared with the test), CHILD_DATABASE_URL (PostgreSQL; PGlite in
 * the data folder when unset), CRASH_BEFORE_STEP. Optional: CHILD_RUNNER_HOST (the machine
 * name its rotation runner records, to stand for another machine), CHILD_KEYS_DIR (signing
 * and master keys shared with another process, `jwt.pem` and `master.key`), and
 * CHILD_WAIT_BEFORE_KILL (print `{"atStep"}` and wait for a line on stdin before dying).
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig } from '../../platform/config.js';
import { openDatabase } from '../../platform/db/database.js';
import { pino } from 'pino';
import { startLockboxApp } from './lockbox-app.js';
import { deployService, rotate } from './rotation-bench.js';

const dataDir = process.env['CHILD_DATA_DIR'] ?? '';
const url = process.env['CHILD_DATABASE_URL'];
const crashBefore = process.env['CRASH_BEFORE_STEP'];
const runnerHost = process.env['CHILD_RUNNER_HOST'];
const keysDir = process.env['CHILD_KEYS_DIR'];
const isWaiting = process.env['CHILD_WAIT_BEFORE_KILL'] === 'true';

function nextLine(): Promise<void> {
  return new Promise((resolve) =>
    createInterface({ input: process.stdin }).once('line', () => resolve()),
  );
}

async function main(): Promise<void> {
  const database =
    url === undefined
      ? 'embedded'
      : {
          database: await openDatabase(
            loadConfig({ DATABASE_URL: url, SWITCHYARD_JWT_PRIVATE_KEY_PATH: '/dev/null' }),
            pino({ level: 'silent' }),
          ),
          url,
          drop: async () => undefined,
        };
  const t = await startLockboxApp('pglite', {
    workers: true,
    dataDir,
    database,
    ...(keysDir === undefined
      ? {}
      : {
          env: {
            SWITCHYARD_JWT_PRIVATE_KEY_PATH: join(keysDir, 'jwt.pem'),
            SWITCHYARD_MASTER_KEY_PATH: join(keysDir, 'master.key'),
          },
        }),
    rotationHooks: {
      ...(runnerHost === undefined ? {} : { runnerHost }),
      async beforeStep(step) {
        if (step !== crashBefore) return;
        if (isWaiting) {
          process.stdout.write(`${JSON.stringify({ atStep: step })}\n`);
          await nextLine();
        }
        process.kill(process.pid, 'SIGKILL');
      },
    },
  });
  const service = await deployService(t.app, t.deps, {
    envKeys: ['SESSION_KEY'],
    secrets: async ({ serviceId, headers }) => {
      await t.app.inject({
        method: 'PUT',
        url: `/v1/services/${serviceId}/secrets/SESSION_KEY`,
        headers,
        payload: { value: 'before-crash' },
      });
    },
  });
  const secretUrl = `/v1/services/${service.serviceId}/secrets/SESSION_KEY`;
  process.stdout.write(`${JSON.stringify({ ...service, secretUrl })}\n`);
  const rotationId = await rotate(t.app, service.headers, secretUrl, { value: 'after-crash' });
  process.stdout.write(`${JSON.stringify({ rotationId })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`crash child failed: ${String(error)}\n`);
  process.exit(1);
});
