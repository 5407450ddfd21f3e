import http from 'node:http';
import type { Logger, Registry } from '../shared/index.js';

export interface MetricsServer {
  /** the port it listens on (METRICS_PORT, or the one the system chose for 0); null when it could not listen */
  port: number | null;
  close(): Promise<void>;
}

/**
 * The worker's own HTTP listener: GET /metrics (Prometheus) and GET /health/live (for a
 * container healthcheck). A port already taken is logged, not fatal: processing jobs
 * matters more than being scraped, and two workers on one host need their own ports.
 */
export async function startMetricsServer(
  registry: Registry,
  { host, port }: { host: string; port: number },
  logger: Logger,
): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
        (err: Error) => {
          logger.error({ err }, 'metrics collection failed');
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics collection failed\n');
        },
      );
    } else if (path === '/health/live') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  });
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      logger.error(
        { err: { message: err.message, code: err.code }, port },
        'metrics listener could not start: this worker is not scraped (give each worker on a host its own METRICS_PORT, or 0)',
      );
      resolve(false);
    });
    server.listen(port, host, () => resolve(true));
  });
  if (!listening) return { port: null, close: async () => undefined };
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  logger.info({ host, port: actual }, 'metrics listening');
  return {
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
