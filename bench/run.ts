import { benchApi } from './api-bench.js';
import { benchAudit } from './audit.bench.js';
import { benchHalfPeak } from './half-peak-bench.js';
import { createEnvironment, type BenchEnvironment } from './environments.js';
import { LoadGenerator } from './load.js';
import { Report } from './report.js';
import { benchRouter } from './router-bench.js';
import { readSettings, type BenchContext, type BenchSettings } from './settings.js';
import { benchStartup, checkBuild } from './startup-bench.js';

/**
 * `npm run bench`: Switchyard's hot paths against bare baselines measured in the same run,
 * on PostgreSQL and on PGlite. Prints figures and ratios; exits 0 whatever they are.
 */
async function runParts(context: BenchContext, environments: BenchEnvironment[]): Promise<void> {
  const { settings } = context;
  const started = performance.now();
  const progress = (step: string) =>
    process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${step}\n`);

  for (const backend of settings.backends) {
    const environment = await createEnvironment(backend);
    environments.push(environment);
    if (!settings.parts.includes('api')) continue;
    progress(`api on ${backend}`);
    await benchApi(environment, context);
  }
  if (settings.parts.includes('audit')) {
    for (const backend of settings.backends) {
      progress(`audit on ${backend}`);
      await benchAudit(backend, context);
    }
  }
  if (settings.parts.includes('router')) {
    progress('router');
    await benchRouter(context);
  }
  if (settings.parts.includes('half-peak')) {
    for (const environment of environments) {
      progress(`half peak on ${environment.backend}`);
      await benchHalfPeak(environment, context);
    }
  }
  if (settings.parts.includes('startup')) {
    for (const environment of environments) {
      progress(`startup on ${environment.backend}`);
      await benchStartup(environment, context);
    }
  }
  progress('done');
}

async function main(settings: BenchSettings): Promise<Report> {
  const report = new Report();
  // Both start the compiled server from dist/.
  if (settings.parts.includes('startup') || settings.parts.includes('half-peak')) {
    const warning = checkBuild();
    if (warning !== undefined) report.addNote(warning);
  }
  const load = LoadGenerator.start();
  const environments: BenchEnvironment[] = [];
  try {
    await runParts({ settings, report, load }, environments);
  } finally {
    await load.close();
    for (const environment of environments) await environment.dispose();
  }
  return report;
}

const settings = readSettings();
process.stderr.write(
  `bench: ${settings.durationS} s runs, ${settings.connections} connections, ` +
    `${settings.rounds} round(s), backends ${settings.backends.join(',')}, ` +
    `parts ${settings.parts.join(',')}\n`,
);
try {
  const report = await main(settings);
  process.stdout.write(`${report.render()}\n`);
} catch (error) {
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`bench failed: ${detail}\n`);
  process.exitCode = 1;
}
