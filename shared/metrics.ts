import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { queueCounts, type QueueCounts } from './queue.js';
import type { ProcessJobData } from './queue.js';

export { Registry } from 'prom-client';

/**
 * A registry of the process's own, with Node's process metrics (CPU, memory, event
 * loop lag, GC, handles). Never prom-client's global one: tests build several apps
 * and workers in one process, and each must count only what it did.
 */
export function createMetricsRegistry(service: 'api' | 'worker'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

const QUEUE_STATES = ['waiting', 'active', 'failed', 'delayed'] as const satisfies ReadonlyArray<keyof QueueCounts>;

/**
 * `workflow_queue_jobs{queue, state}`, read from Redis when scraped (one round trip,
 * at most a second). While Redis does not answer the series are left out rather than
 * reported stale; `/health` says why.
 */
export function registerQueueGauges(registry: Registry, queue: Queue<ProcessJobData>): void {
  new Gauge({
    name: 'workflow_queue_jobs',
    help: 'Jobs in the processing queue by state (waiting, active, failed, delayed), read from Redis on scrape',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const counts = await queueCounts(queue, 1000);
        for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state]);
      } catch {
        // no sample this scrape: an absent series is what alerting on staleness expects
      }
    },
  });
}
