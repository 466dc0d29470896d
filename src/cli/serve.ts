import { loadConfig, ConfigError } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { createDependencies } from '../platform/dependencies.js';
import { buildApp } from '../platform/app.js';
import { startWorkers, type Workers } from '../platform/workers.js';

/**
 * `switchyard serve`: API, workers and router in one process (or one role of them). On
 * SIGTERM/SIGINT it stops accepting, drains requests, stops workers, closes everything in
 * reverse order and exits 0; past the deadline it exits 1 naming what was still open.
 */
export async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`switchyard: ${error.message}\n`);
      process.exit(10);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  const startedAt = performance.now();
  const deps = await createDependencies(config, logger);
  const app = await buildApp(deps);
  let workers: Workers | undefined;
  let phase = 'starting';

  const shutdown = async (signal: string) => {
    if (phase === 'stopping') return;
    phase = 'stopping';
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error({ phase }, 'shutdown deadline passed; exiting');
      process.exit(1);
    }, config.process.shutdownTimeoutMs);
    deadline.unref();
    try {
      phase = 'closing http server';
      await app.close();
      phase = 'stopping workers';
      await workers?.stop(Math.floor(config.process.shutdownTimeoutMs / 2));
      phase = 'closing dependencies';
      await deps.close();
      logger.info('shutdown complete');
      clearTimeout(deadline);
      process.exit(0);
    } catch (error) {
      logger.error({ err: error, phase }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  if (config.process.role !== 'api') workers = await startWorkers(deps);
  if (config.process.role !== 'worker') {
    await app.listen({ host: config.api.host, port: config.api.port });
  }
  phase = 'running';
  logger.info(
    {
      mode: config.mode,
      role: config.process.role,
      api: config.process.role === 'worker' ? null : `http://${config.api.host}:${config.api.port}`,
      router: config.process.role === 'api' ? null : `http://*.${config.router.baseDomain}:${config.router.port}`,
      dataDir: config.dataDir,
      startMs: Math.round(performance.now() - startedAt),
    },
    'switchyard ready',
  );
}
