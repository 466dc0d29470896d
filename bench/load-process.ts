import autocannon from 'autocannon';

/**
 * The load generator, in a process of its own so that the CPU time of the bench process is
 * the servers' alone. Runs one autocannon job per message from the parent and answers with
 * the figures; exits when the parent disconnects.
 */

export interface LoadJob {
  url: string;
  headers: Record<string, string>;
  /** GET when absent. */
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: string;
  connections: number;
  durationS: number;
  /**
   * Requests per second across all connections: an open-loop run at a fixed offered rate.
   * Absent: closed loop, each connection sends its next request when the last one answered.
   */
  overallRate?: number;
}

export interface LoadFigures {
  requestsPerSec: number;
  p99Ms: number;
  requests: number;
  failures: number;
}

async function run(job: LoadJob): Promise<LoadFigures> {
  const result = await autocannon({
    url: job.url,
    headers: job.headers,
    method: job.method ?? 'GET',
    ...(job.body === undefined ? {} : { body: job.body }),
    connections: job.connections,
    duration: job.durationS,
    ...(job.overallRate === undefined ? {} : { overallRate: job.overallRate }),
  });
  return {
    requestsPerSec: result.requests.average,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    failures: result.errors + result.timeouts + result.non2xx,
  };
}

process.on('message', (job: LoadJob) => {
  run(job).then(
    (figures) => process.send?.({ figures }),
    (error: unknown) =>
      process.send?.({ error: error instanceof Error ? error.message : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
