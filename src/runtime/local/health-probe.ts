import http from 'node:http';

export type ProbeResult =
  { isHealthy: true; status: number } | { isHealthy: false; status?: number; error?: string };

/**
 * One HTTP GET against an instance on 127.0.0.1. 2xx and 3xx are healthy; an error status,
 * a refused connection, no answer within `timeoutMs` or an abort are not. Never rejects.
 */
export function probeHealth(
  port: number,
  path: string,
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const onAnswer = (response: http.IncomingMessage): void => {
      const status = response.statusCode ?? 0;
      response.resume();
      response.destroy();
      const isHealthy = status >= 200 && status < 400;
      resolve(isHealthy ? { isHealthy, status } : { isHealthy, status });
    };

    try {
      const request = http.get(
        {
          host: '127.0.0.1',
          port,
          path: path.startsWith('/') ? path : `/${path}`,
          agent: false,
          timeout: options.timeoutMs,
          signal: options.signal,
          headers: { 'user-agent': 'switchyard-health-probe', connection: 'close' },
        },
        onAnswer,
      );
      request.on('timeout', () => request.destroy(new Error('health check timed out')));
      request.on('error', (error) => resolve({ isHealthy: false, error: error.message }));
    } catch (error) {
      // A path Node refuses to send (spaces, control characters) fails every probe.
      resolve({ isHealthy: false, error: error instanceof Error ? error.message : String(error) });
    }
  });
}
