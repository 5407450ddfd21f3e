import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  deliveryJobId,
  enqueueDeliveries,
  type Database,
  type DeliveryJob,
  type DeliveryJobData,
  type Logger,
} from '../shared/index.js';

export interface DeliveryRepairDeps {
  db: Pick<Database, 'webhooks' | 'events'>;
  queue: Queue<DeliveryJobData>;
  connection: Redis;
  logger: Logger;
  /** a pending delivery this long past due is checked for its job */
  graceMs: number;
  /** delivered and failed deliveries are deleted this long after they ended */
  retentionMs: number;
  /** events are deleted this long after they happened */
  eventRetentionMs: number;
}

export interface DeliveryRepair {
  /** Adds again the jobs of overdue pending deliveries that Redis does not hold; returns how many. */
  repairLostDeliveries(): Promise<number>;
  /** Deletes what outlived its retention (at most once a minute); returns how many rows. */
  prune(): Promise<number>;
}

const PAGE = 500;
const MAX_PER_PASS = 10_000;
const PRUNE_EVERY_MS = 60_000;

/**
 * The deliveries' part of the reconciler's pass. A pending delivery always has a job due
 * at its `next_attempt_at`; one still pending past that (plus a grace) whose job is
 * missing (lost with Redis's data, or never added after commit) or finished (its attempt
 * could not be written) is added again under the same job id. The cost follows the
 * pending deliveries that are overdue, normally none, through a partial index.
 */
export function createDeliveryRepair({
  db,
  queue,
  connection,
  logger,
  graceMs,
  retentionMs,
  eventRetentionMs,
}: DeliveryRepairDeps): DeliveryRepair {
  let prunedAt = 0;

  async function examine(page: readonly DeliveryJob[]): Promise<number> {
    const pipeline = connection.pipeline();
    for (const job of page) pipeline.hmget(queue.toKey(deliveryJobId(job)), 'timestamp', 'finishedOn');
    const replies = (await pipeline.exec()) ?? [];
    const suspects: Array<DeliveryJob & { finished: boolean }> = [];
    for (const [i, job] of page.entries()) {
      const [err, fields] = replies[i] ?? [];
      if (err) throw err;
      const [createdAt, finishedOn] = fields as [string | null, string | null];
      if (createdAt !== null && finishedOn === null) continue; // waiting, delayed or active
      suspects.push({ ...job, finished: finishedOn !== null });
    }
    // read after Redis: a job that finished meanwhile moved the row on before it finished
    const lost = await db.webhooks.stillPending(suspects);
    const finished = new Set(suspects.filter((s) => s.finished).map((s) => s.deliveryId));
    const readd: DeliveryJob[] = [];
    for (const job of lost) {
      if (finished.has(job.deliveryId) && (await queue.remove(deliveryJobId(job)).catch(() => 0)) !== 1) continue;
      readd.push({ deliveryId: job.deliveryId, seq: job.seq });
    }
    if (readd.length > 0 && !(await enqueueDeliveries(queue, readd, logger))) throw new Error('enqueue failed');
    return readd.length;
  }

  return {
    async repairLostDeliveries() {
      const dueBefore = Date.now() - graceMs;
      let after: [number, string] | null = null;
      let examined = 0;
      let added = 0;
      while (examined < MAX_PER_PASS) {
        const page = await db.webhooks.findOverdue(dueBefore, after, PAGE);
        examined += page.length;
        added += await examine(page);
        const last = page[page.length - 1];
        if (page.length < PAGE || !last) break;
        after = [last.dueAt, last.deliveryId];
      }
      if (added > 0) logger.warn({ requeued: added }, 'reconciler queued lost webhook deliveries again');
      return added;
    },
    async prune() {
      const now = Date.now();
      if (now - prunedAt < PRUNE_EVERY_MS) return 0;
      prunedAt = now;
      const deliveries = await db.webhooks.prune(now - retentionMs);
      const events = await db.events.prune(now - eventRetentionMs);
      if (deliveries + events > 0) logger.info({ deliveries, events }, 'pruned past their retention');
      return deliveries + events;
    },
  };
}
