import type { Logger } from 'pino';
import { loadConfig, ConfigError, type Config } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { createDependencies, type Dependencies } from '../platform/dependencies.js';
import { buildApp, type AppInstance } from '../platform/app.js';
import { prepareQueue, startWorkers, type Workers } from '../platform/workers.js';
import { lockboxConfigProblems } from '../secrets/lockbox.js';

/** The exit code of a configuration problem, found before start or while starting. */
const EXIT_CONFIG = 10;

/** What this process holds, filled in as start-up gets further; stop() releases it in reverse. */
interface Running {
  deps?: Dependencies;
  app?: AppInstance;
  workers?: Workers;
}

/**
 * `switchyard serve`: API, workers and router in one process (or one role of them). On
 * SIGTERM/SIGINT it stops accepting, drains requests, stops workers, closes everything in
 * reverse order and exits 0; past the deadline it exits 1 naming the phase it was in and
 * what was still open. A failed start releases what it had opened and exits 1, or 10 when
 * the configuration was at fault (a missing master key, unreadable signing keys).
 */
export async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig();
    const problems = lockboxConfigProblems(config);
    if (problems.length > 0) throw new ConfigError(problems);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchyard: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  const startedAt = performance.now();
  const running: Running = {};
  let phase = 'starting';
  let isStopping = false;

  const stop = async (reason: string, exitCode: number) => {
    if (isStopping) return;
    isStopping = true;
    logger.info({ reason }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error({ phase, open: describeOpenResources() }, 'shutdown deadline passed; exiting');
      process.exit(1);
    }, config.process.shutdownTimeoutMs);
    deadline.unref();
    try {
      await release(running, config, (next) => (phase = next));
      logger.info({ exitCode }, 'shutdown complete');
      clearTimeout(deadline);
      process.exit(exitCode);
    } catch (error) {
      logger.error({ err: error, phase }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM', 0));
  process.once('SIGINT', () => void stop('SIGINT', 0));

  try {
    await start(running, config, logger);
  } catch (error) {
    logger.error({ err: error, phase }, 'start failed');
    if (error instanceof ConfigError) process.stderr.write(`switchyard: ${error.message}\n`);
    await stop('start failed', error instanceof ConfigError ? EXIT_CONFIG : 1);
    return;
  }
  if (isStopping) return;
  phase = 'running';
  logger.info(
    {
      mode: config.mode,
      role: config.process.role,
      api: `http://${config.api.host}:${config.api.port}${config.process.role === 'worker' ? ' (probes only)' : ''}`,
      router:
        config.process.role === 'api'
          ? null
          : `http://*.${config.router.baseDomain}:${config.router.port}`,
      dataDir: config.dataDir,
      startMs: Math.round(performance.now() - startedAt),
    },
    'switchyard ready',
  );
}

async function start(running: Running, config: Readonly<Config>, logger: Logger): Promise<void> {
  running.deps = await createDependencies(config, logger);
  running.app = await buildApp(running.deps);
  // Every role enqueues work (builds, deployments); only workers take it.
  await prepareQueue(running.deps);
  if (config.process.role !== 'api') running.workers = await startWorkers(running.deps);
  // In the worker role the app serves /healthz, /readyz and /metrics only.
  await running.app.listen({ host: config.api.host, port: config.api.port });
}

/** Closes the HTTP server (draining requests), then the workers, then the dependencies. */
async function release(
  running: Running,
  config: Readonly<Config>,
  enter: (phase: string) => void,
): Promise<void> {
  enter('closing http server');
  await running.app?.close();
  enter('stopping workers');
  const queueTimeoutMs = Math.floor(config.process.shutdownTimeoutMs / 2);
  if (running.workers === undefined) await running.deps?.queue.stop(queueTimeoutMs);
  else await running.workers.stop(queueTimeoutMs);
  enter('closing dependencies');
  await running.deps?.close();
}

/** Counts of what keeps the event loop alive (sockets, timers, child processes, files). */
function describeOpenResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
