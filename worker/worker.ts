import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  createProcessingQueue,
  createWebhookQueue,
  Coalescer,
  relayOutbox,
  WEBHOOK_QUEUE_NAME,
  type DeliveryJobData,
  isDependencyUnavailable,
  QUEUE_NAME,
  untilAborted,
  warnUnlessAofAndNoEviction,
  type Config,
  type Database,
  type Logger,
  type ProcessJobData,
  type QueuedRecord,
  type TransitionInput,
} from '../shared/index.js';
import { createDeliveryHandler } from './deliver-webhook.js';
import { createDeliveryRepair } from './delivery-reconciler.js';
import { createRecordHandler } from './process-record.js';
import { createProcessors, type Processors } from './processors/index.js';
import { startReconciler, type Reconciler } from './reconciler.js';
import { createWebhookMetrics } from './webhook-metrics.js';
import { createWorkerMetrics, type WorkerMetrics } from './worker-metrics.js';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  db: Database;
  connection: Redis;
  /** by default those of the categories file (config.categories) */
  processors?: Processors;
}

export interface RecordsWorker {
  worker: Worker<ProcessJobData>;
  /** sends webhook deliveries */
  deliveries: Worker<DeliveryJobData>;
  reconciler: Reconciler;
  /** this worker's own metrics registry; main.ts serves it on METRICS_PORT */
  metrics: WorkerMetrics;
  /**
   * Stops taking jobs and waits for the active ones until `deadline` aborts (by default
   * SHUTDOWN_TIMEOUT_MS from now); jobs still running then are left to their locks, which
   * lapse so another worker takes them, as after a crash. Safe to call twice.
   */
  close(deadline?: AbortSignal): Promise<void>;
}

export function createRecordsWorker({ config, logger, db, connection, processors }: WorkerDeps): RecordsWorker {
  // outcomes of jobs that finish together are written in one transaction. An outcome that cannot
  // be written fails its own job only (writing the others again is safe: the guard matches once),
  // unless the database cannot be reached at all
  // tells running processors the worker is stopping, so none holds the close up
  const shutdown = new AbortController();
  const grouping = { maxGroup: 200, failsWholeGroup: isDependencyUnavailable };
  const transitions = new Coalescer<TransitionInput, boolean>(
    (group) => db.transitions.applyTransitions(group),
    grouping,
  );
  const queue = createProcessingQueue(connection, {
    prefix: config.queuePrefix,
    maxAttempts: config.maxAttempts,
    retryBackoffMs: config.retryBackoffMs,
  });
  const metrics = createWorkerMetrics(queue);
  // jobs that start together read their records in one query
  const loads = new Coalescer<string, QueuedRecord | null>((ids) => db.records.findQueued(ids), grouping);
  const handler = createRecordHandler({
    transitions: db.transitions,
    loadRecord: (id) => loads.submit(id),
    applyTransition: (transition) => transitions.submit(transition),
    processors: processors ?? createProcessors(config.categories),
    logger,
    maxAttempts: config.maxAttempts,
    shutdown: shutdown.signal,
    onProcessorRun: (processor, outcome, seconds) => metrics.observeProcessor(processor, outcome, seconds),
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

  metrics.observe(worker);

  // deliveries written with this worker's transitions are enqueued after commit; any worker sends them
  const webhookQueue = createWebhookQueue(connection, config.queuePrefix);
  const stopRelay = relayOutbox(db, webhookQueue, connection, config.queuePrefix, logger);
  const webhookMetrics = createWebhookMetrics(metrics.registry, db);
  const deliveryLoads = new Coalescer((ids: string[]) => db.webhooks.loadForSend(ids), grouping);
  const deliveredGroups = new Coalescer(
    (items: Array<{ id: string; seq: number; attempts: number; statusCode: number }>) =>
      db.webhooks.markDelivered(items),
    grouping,
  );
  const deliveries = new Worker<DeliveryJobData>(
    WEBHOOK_QUEUE_NAME,
    createDeliveryHandler({
      webhooks: db.webhooks,
      // deliveries that start or finish together share one query and one transaction
      load: (id) => deliveryLoads.submit(id),
      delivered: (item) => deliveredGroups.submit(item),
      queue: webhookQueue,
      settings: config.webhooks,
      logger,
      observeAttempt: webhookMetrics.observeAttempt,
    }),
    {
      connection,
      prefix: config.queuePrefix,
      concurrency: config.webhooks.concurrency,
      lockDuration: config.jobLockMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: 2,
    },
  );
  deliveries.on('error', (err) => logger.warn({ err: { message: err.message } }, 'delivery worker error'));
  webhookMetrics.observe(deliveries);

  const reconciler = startReconciler({
    db,
    queue,
    connection,
    logger,
    intervalMs: config.reconcileIntervalMs,
    deliveries: createDeliveryRepair({
      db,
      queue: webhookQueue,
      connection,
      logger,
      graceMs: config.reconcileIntervalMs,
      retentionMs: config.webhooks.retentionMs,
      eventRetentionMs: config.events.retentionMs,
    }),
  });

  let closing: Promise<void> | undefined;
  const close = (deadline: AbortSignal = AbortSignal.timeout(config.shutdownTimeoutMs)) => {
    closing ??= (async () => {
      // with Redis away a graceful close waits for it to return, so force it: a job cut off
      // is taken again once its lock lapses, and the status guard keeps an outcome it committed
      const redisAway = connection.status !== 'ready';
      shutdown.abort();
      const stopping = reconciler.stop();
      // a reconcile pass waiting on Redis must not hold the close
      if (!redisAway) await untilAborted(stopping, deadline);
      stopRelay();
      // worker.close(true) after worker.close() would return the same promise: choose once
      const workerClosed = await untilAborted(
        Promise.all([worker.close(redisAway), deliveries.close(redisAway)]),
        deadline,
      );
      if (!workerClosed) {
        logger.warn(
          { timeout_ms: config.shutdownTimeoutMs, redis: connection.status },
          'jobs still active at the shutdown deadline: left to their locks; another worker takes them',
        );
        return;
      }
      await untilAborted(Promise.all([queue.close(), webhookQueue.close()]), deadline);
    })();
    return closing;
  };
  return { worker, deliveries, reconciler, metrics, close };
}
