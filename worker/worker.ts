import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAME, type Config, type Database, type Logger, type ProcessJobData } from '../shared/index.js';
import { createRecordHandler } from './process-record.js';
import { processors as defaultRegistry, type ProcessorRegistry } from './processors/index.js';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  db: Database;
  connection: Redis;
  processors?: ProcessorRegistry;
}

export interface RecordsWorker {
  worker: Worker<ProcessJobData>;
  /** Stops taking jobs and waits for the active ones, at most SHUTDOWN_TIMEOUT_MS. Safe to call twice. */
  close(): Promise<void>;
}

export function createRecordsWorker({ config, logger, db, connection, processors }: WorkerDeps): RecordsWorker {
  const handler = createRecordHandler({
    records: db.records,
    processors: processors ?? defaultRegistry,
    logger,
    maxAttempts: config.maxAttempts,
  });
  const worker = new Worker<ProcessJobData>(QUEUE_NAME, handler, {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
  });
  worker.on('error', (err) => logger.warn({ err: { message: err.message } }, 'worker error'));
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? config.maxAttempts)) {
      logger.error({ job_id: job.id, err: { message: err.message } }, 'job failed after its last attempt');
    }
  });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
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
    })();
    return closing;
  };
  return { worker, close };
}
