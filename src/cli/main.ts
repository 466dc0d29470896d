import { ConfigError } from '../platform/config.js';
import { serve } from './serve.js';
import { migrateCommand } from './migrate.js';
import { rewrapCommand } from './secrets-rewrap.js';
import { runCli } from './run.js';

async function main(argv: string[]): Promise<void> {
  const [command] = argv;
  if (command === 'serve') return serve();
  if (command === 'migrate') return migrateCommand();
  // A server command (it opens the database and the master keys), unlike the other `secrets` verbs.
  if (command === 'secrets' && argv[1] === 'rewrap') return rewrapCommand();

  // The client verbs, and `help`; runCli prints the usage of both halves.
  process.exitCode = await runCli(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`switchyard: ${error instanceof Error ? error.message : String(error)}\n`);
  // A configuration problem (migrate, secrets rewrap) exits 10, as serve's do.
  process.exitCode = error instanceof ConfigError ? 10 : 1;
});
