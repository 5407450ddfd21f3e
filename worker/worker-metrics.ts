import type { Job, Queue, Worker } from 'bullmq';
import { Counter, Histogram } from 'prom-client';
import { createMetricsRegistry, registerQueueGauges, type ProcessJobData, type Registry } from '../shared/index.js';
import type { JobOutcome, ProcessorOutcome } from './process-record.js';
import type { CategoryProcessor } from './processors/index.js';

/** Seconds a job ran: the default processor takes a millisecond, a slow one may take a minute. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ATTEMPT_BUCKETS = [1, 2, 3, 4, 5, 7, 10, 15, 20, 50, 100];

export interface WorkerMetrics {
  registry: Registry;
  /** Counts the worker's jobs from its own events: no work in the job handler itself. */
  observe(worker: Worker<ProcessJobData>): void;
  /** One processor run: how long it took and how it ended, by category and processor kind. */
  observeProcessor(processor: CategoryProcessor, outcome: ProcessorOutcome, seconds: number): void;
}

/** From taking the job to now, or to its finishing time (a retried job has none: it is not finished). */
const seconds = (job: Job) =>
  job.processedOn === undefined ? null : ((job.finishedOn ?? Date.now()) - job.processedOn) / 1000;

export function createWorkerMetrics(queue: Queue<ProcessJobData>): WorkerMetrics {
  const registry = createMetricsRegistry('worker');
  const transitions = new Counter({
    name: 'workflow_transitions_total',
    help: 'Terminal transitions this worker wrote, by outcome (processed, failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'workflow_job_duration_seconds',
    help:
      'Time a job ran in this worker, by outcome: processed, failed, retried (a transient error; BullMQ tries ' +
      'again), skipped (the record was no longer pending), superseded (another delivery wrote the transition)',
    labelNames: ['outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const attempts = new Histogram({
    name: 'workflow_job_attempts',
    help: 'The attempt at which a record reached its terminal state, by outcome (processed, failed)',
    labelNames: ['outcome'] as const,
    buckets: ATTEMPT_BUCKETS,
    registers: [registry],
  });
  const processorDuration = new Histogram({
    name: 'workflow_processor_duration_seconds',
    help:
      'Time one processor run took, by category (as the categories file lists it; others are "(unlisted)") and ' +
      'processor kind (builtin, module, http)',
    labelNames: ['category', 'processor'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const processorRuns = new Counter({
    name: 'workflow_processor_runs_total',
    help: 'Processor runs by category, processor kind and outcome (processed, failed, retried)',
    labelNames: ['category', 'processor', 'outcome'] as const,
    registers: [registry],
  });
  registerQueueGauges(registry, queue);

  for (const outcome of ['processed', 'failed'] as const) {
    // present from the start at 0, so rate() works from the first scrape
    transitions.labels({ outcome }).inc(0);
  }

  return {
    registry,
    observeProcessor({ label, kind }, outcome, ran) {
      processorDuration.observe({ category: label, processor: kind }, ran);
      processorRuns.inc({ category: label, processor: kind, outcome });
    },
    observe(worker) {
      worker.on('completed', (job, outcome: JobOutcome) => {
        const ran = seconds(job);
        if (ran !== null) duration.observe({ outcome }, ran);
        if (outcome === 'processed' || outcome === 'failed') {
          transitions.inc({ outcome });
          // attemptsMade counts this attempt once the job has completed
          attempts.observe({ outcome }, Math.max(job.attemptsMade, 1));
        }
      });
      worker.on('failed', (job) => {
        const ran = job ? seconds(job) : null;
        if (ran !== null) duration.observe({ outcome: 'retried' }, ran);
      });
    },
  };
}
