import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  createProcessingQueue,
  Coalescer,
  QUEUE_NAME,
  warnUnlessAofAndNoEviction,
  type Config,
  type Database,
  type Logger,
  type ProcessJobData,
  type QueuedRecord,
  type TransitionInput,
} from '../shared/index.js';
import { createRecordHandler } from './process-record.js';
import { processors as defaultRegistry, type ProcessorRegistry } from './processors/index.js';
import { startReconciler, type Reconciler } from './reconciler.js';
import { createWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  db: Database;
  connection: Redis;
  processors?: ProcessorRegistry;
}

export interface RecordsWorker {
  worker: Worker<ProcessJobData>;
  reconciler: Reconciler;
  /** this worker's own metrics registry; main.ts serves it on METRICS_PORT */
  metrics: WorkerMetrics;
  /** Stops taking jobs and waits for the active ones, at most SHUTDOWN_TIMEOUT_MS. Safe to call twice. */
  close(): Promise<void>;
}

export function createRecordsWorker({ config, logger, db, connection, processors }: WorkerDeps): RecordsWorker {
  // outcomes of jobs that finish together are written in one transaction
  const transitions = new Coalescer<TransitionInput, boolean>((group) => db.transitions.applyTransitions(group), 200);
  // jobs that start together read their records in one query
  const loads = new Coalescer<string, QueuedRecord | null>((ids) => db.records.findQueued(ids), 200);
  const handler = createRecordHandler({
    transitions: db.transitions,
    loadRecord: (id) => loads.submit(id),
    applyTransition: (transition) => transitions.submit(transition),
    processors: processors ?? defaultRegistry,
    logger,
    maxAttempts: config.maxAttempts,
  });
  const worker = new Worker<ProcessJobData>(QUEUE_NAME, handler, {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
    // a job's lock is renewed every lockDuration/2 while it runs; a worker that dies
    // stops renewing, and within lockDuration + stalledInterval another worker takes
    // the job again (the status guard makes that redelivery harmless)
    lockDuration: config.jobLockMs,
    stalledInterval: config.stalledIntervalMs,
    maxStalledCount: 2,
  });
  worker.on('error', (err) => logger.warn({ err: { message: err.message } }, 'worker error'));
  worker.on('stalled', (jobId) =>
    logger.warn({ job_id: jobId }, 'job stalled: its worker stopped renewing the lock; redelivering'),
  );
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? config.maxAttempts)) {
      logger.error({ job_id: job.id, err: { message: err.message } }, 'job failed after its last attempt');
    }
  });
  void warnUnlessAofAndNoEviction(connection, logger);

  const queue = createProcessingQueue(connection, {
    prefix: config.queuePrefix,
    maxAttempts: config.maxAttempts,
    retryBackoffMs: config.retryBackoffMs,
  });
  const metrics = createWorkerMetrics(queue);
  metrics.observe(worker);
  const reconciler = startReconciler({
    db,
    queue,
    connection,
    logger,
    intervalMs: config.reconcileIntervalMs,
  });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await reconciler.stop();
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
      });
      const outcome = await Promise.race([worker.close(), forced]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        logger.warn({ timeout_ms: config.shutdownTimeoutMs }, 'jobs still active at shutdown timeout; closing anyway');
        await worker.close(true);
      }
      await queue.close();
    })();
    return closing;
  };
  return { worker, reconciler, metrics, close };
}
