import type { Worker } from 'bullmq';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Database, DeliveryJobData, Registry } from '../shared/index.js';
import type { DeliveryOutcome } from './deliver-webhook.js';

const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface WebhookMetrics {
  observeAttempt(result: 'answered' | 'no_answer', seconds: number): void;
  observe(worker: Worker<DeliveryJobData>): void;
}

/** The deliveries' metrics, in the worker's registry. */
export function createWebhookMetrics(registry: Registry, db: Pick<Database, 'webhooks'>): WebhookMetrics {
  const outcomes = new Counter({
    name: 'workflow_webhook_deliveries_total',
    help:
      'Delivery attempts this worker made, by outcome: delivered (2xx), retried (another attempt is scheduled), ' +
      'failed (the last attempt, or a URL refused), disabled (410 Gone), skipped (nothing left to send)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'workflow_webhook_attempt_duration_seconds',
    help: "Time an attempt's HTTP call took, by result (answered, no_answer: timeout or connection failure)",
    labelNames: ['result'] as const,
    buckets: ATTEMPT_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'workflow_webhook_oldest_pending_seconds',
    help: 'Age of the oldest pending webhook delivery (0 when none), read from the database on scrape',
    registers: [registry],
    async collect() {
      try {
        const oldest = await db.webhooks.oldestPendingCreatedAt();
        this.set(oldest === null ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      } catch {
        this.reset(); // no sample while the database does not answer
      }
    },
  });
  for (const outcome of ['delivered', 'retried', 'failed', 'disabled', 'skipped'] as const) {
    outcomes.labels({ outcome }).inc(0);
  }
  return {
    observeAttempt: (result, seconds) => latency.observe({ result }, seconds),
    observe(worker) {
      worker.on('completed', (_job, outcome: DeliveryOutcome) => outcomes.inc({ outcome }));
    },
  };
}
