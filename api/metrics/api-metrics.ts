import { Counter, Histogram } from 'prom-client';
import { createMetricsRegistry, registerQueueGauges, type ProcessJobData, type Registry } from '../../shared/index.js';
import type { Queue } from 'bullmq';

/** Seconds; from a cached read (~1 ms) to a `Prefer: wait=30` that waited it out. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface ApiMetrics {
  registry: Registry;
  /** Counts one answered request; `route` is the route template, never the raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  recordsCreated: Counter;
}

export function createApiMetrics(queue: Queue<ProcessJobData>): ApiMetrics {
  const registry = createMetricsRegistry('api');
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to answering it, by method, route template and status code',
    labelNames,
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  const recordsCreated = new Counter({
    name: 'workflow_records_created_total',
    help: 'Records stored by the API (an idempotent replay stores nothing and is not counted)',
    registers: [registry],
  });
  registerQueueGauges(registry, queue);

  return {
    registry,
    recordsCreated,
    // about a microsecond per request: two label hashes and a bucket search
    observeRequest(method, route, status, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}
