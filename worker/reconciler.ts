import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  enqueueProcessing,
  jobIdFor,
  type Logger,
  type Database,
  type OutstandingIntent,
  type ProcessJobData,
} from '../shared/index.js';

const PAGE = 500;

export interface ReconcilerDeps {
  db: Pick<Database, 'reconciliation' | 'idempotency'>;
  queue: Queue<ProcessJobData>;
  connection: Redis;
  logger: Logger;
  intervalMs: number;
}

export interface Reconciler {
  /** One pass; returns how many records were queued again (0 when another process holds the turn). */
  reconcileLostJobs(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Repairs lost enqueues: every interval, pending records whose stored intent is
 * older than one interval and whose job is missing from Redis (lost in an outage,
 * a restart without data, or an enqueue that failed after commit), or finished
 * without a transition, are queued again under the same job id. A Redis lock gives
 * one worker the turn per interval; were two to run anyway, the job id makes the
 * second add a no-op and the status guard makes any redelivery harmless.
 */
export function startReconciler({ db, queue, connection, logger, intervalMs }: ReconcilerDeps): Reconciler {
  const lockKey = `${queue.qualifiedName}:reconcile-lock`;
  const token = randomUUID();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  async function requeue(intents: OutstandingIntent[]): Promise<number> {
    const pipeline = connection.pipeline();
    for (const i of intents) pipeline.hmget(queue.toKey(jobIdFor(i.recordId, i.seq)), 'timestamp', 'finishedOn');
    const replies = (await pipeline.exec()) ?? [];
    const lost: ProcessJobData[] = [];
    for (const [index, intent] of intents.entries()) {
      const [err, fields] = replies[index] ?? [];
      if (err) throw err;
      const [createdAt, finishedOn] = fields as [string | null, string | null];
      if (createdAt !== null && finishedOn === null) continue; // waiting, active or delayed: alive
      // a finished job with the record still pending means its transition never committed
      if (finishedOn !== null) await queue.remove(jobIdFor(intent.recordId, intent.seq)).catch(() => 0);
      lost.push({ recordId: intent.recordId, seq: intent.seq, requestId: intent.requestId });
    }
    if (lost.length > 0 && !(await enqueueProcessing(queue, lost, logger))) throw new Error('enqueue failed');
    return lost.length;
  }

  async function reconcileLostJobs(): Promise<number> {
    const turn = await connection.set(lockKey, token, 'PX', intervalMs, 'NX');
    if (turn !== 'OK') return 0;
    const cutoff = Date.now() - intervalMs;
    let requeued = 0;
    let after: string | null = null;
    for (;;) {
      const page = await db.reconciliation.findOutstandingIntents(cutoff, after, PAGE);
      if (page.length === 0) break;
      requeued += await requeue(page);
      after = page[page.length - 1]!.recordId;
    }
    if (requeued > 0) logger.warn({ requeued }, 'reconciler queued lost jobs again');
    const pruned = await db.idempotency.prune();
    if (pruned > 0) logger.info({ pruned }, 'expired idempotency keys pruned');
    return requeued;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = reconcileLostJobs()
        .catch((err: Error) =>
          logger.warn({ err: { message: err.message } }, 'reconcile pass failed; next interval retries'),
        )
        .finally(schedule);
    }, intervalMs);
  };
  schedule();

  return {
    reconcileLostJobs,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
