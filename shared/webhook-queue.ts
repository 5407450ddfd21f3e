import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { DeliveryJob, Database } from './db/index.js';
import { eventsChannel } from './events.js';
import type { Logger } from './logger.js';
import { withTimeout } from './queue.js';

export const WEBHOOK_QUEUE_NAME = 'webhooks';
export const DELIVERY_JOB = 'deliver-webhook';

export type DeliveryJobData = DeliveryJob;

/** One job id per scheduled attempt of a delivery: a repeated add of the same one adds nothing. */
export const deliveryJobId = (job: DeliveryJob): string => `${job.deliveryId}-${job.seq}`;

export function createWebhookQueue(connection: Redis, prefix: string): Queue<DeliveryJobData> {
  return new Queue<DeliveryJobData>(WEBHOOK_QUEUE_NAME, {
    connection,
    prefix,
    defaultJobOptions: {
      // a job fails only when the database cannot be written; the attempt itself never throws
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 86_400, count: 5000 },
    },
    streams: { events: { maxLen: 1000 } },
  });
}

/** Adds delivery jobs (delayed by `delayMs`). Never throws: what it cannot add, the reconciler adds once due. */
export async function enqueueDeliveries(
  queue: Queue<DeliveryJobData>,
  jobs: readonly DeliveryJob[],
  logger: Logger,
  delayMs = 0,
): Promise<boolean> {
  if (jobs.length === 0) return true;
  const add = queue.addBulk(
    jobs.map((data) => ({
      name: DELIVERY_JOB,
      data: { deliveryId: data.deliveryId, seq: data.seq },
      opts: { jobId: deliveryJobId(data), ...(delayMs > 0 ? { delay: delayMs } : {}) },
    })),
  );
  try {
    await withTimeout(add, 2000, 'enqueue timed out');
    return true;
  } catch (err) {
    add.catch(() => undefined);
    logger.warn(
      { err: { message: (err as Error).message }, count: jobs.length },
      'delivery enqueue deferred to reconciler',
    );
    return false;
  }
}

/**
 * After every commit that wrote to the outbox: adds the new deliveries' jobs and tells
 * the event streams of every API process that the log grew. Both are best effort; the
 * reconciler adds a delivery whose job is missing once it is due, and the streams also
 * read the log on a timer. Returns the unsubscribe.
 */
export function relayOutbox(
  db: Pick<Database, 'outbox'>,
  queue: Queue<DeliveryJobData>,
  redis: Redis,
  prefix: string,
  logger: Logger,
): () => void {
  const channel = eventsChannel(prefix);
  return db.outbox.onCommit((written) => {
    void enqueueDeliveries(queue, written.deliveries, logger);
    redis.publish(channel, '1').catch(() => undefined);
  });
}
