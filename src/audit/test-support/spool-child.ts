// A process that records audit events while its database is unreachable, so they wait in
// its spool; it reports "spooled <n>" on stdout and then idles until it is killed.
// Usage: node --import tsx spool-child.ts <spool path> <database url> <count> <first number>
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../platform/config.js';
import { openDatabase } from '../../platform/db/database.js';
import { createAuditMetrics } from '../audit.metrics.js';
import { insertEvents } from '../audit.repository.js';
import { AuditSpool } from '../audit-spool.js';
import { createAuditWriter } from '../audit-writer.js';
import { numberedEvent } from './events.js';

const [spoolPath = '', databaseUrl = '', countText = '0', firstText = '0'] = process.argv.slice(2);
const logger = pino({ level: 'silent' });
const config = loadConfig({
  DATABASE_URL: databaseUrl,
  SWITCHYARD_JWT_PRIVATE_KEY_PATH: '/dev/null',
  DATABASE_CONNECT_TIMEOUT_MS: '300',
});
const database = await openDatabase(config, logger);
const writer = createAuditWriter({
  insert: (records) => insertEvents(database.db, records),
  spool: AuditSpool.open(spoolPath),
  logger,
  metrics: createAuditMetrics(new Registry()),
  options: { batchSize: 7, flushIntervalMs: 5, retryMinMs: 60_000, retryMaxMs: 60_000 },
});

const count = Number(countText);
for (let n = Number(firstText); n < Number(firstText) + count; n++)
  writer.enqueue(numberedEvent(n));
while (writer.spoolDepth() < count) await writer.flush();
process.stdout.write(`spooled ${writer.spoolDepth()}\n`);
setInterval(() => undefined, 60_000);
