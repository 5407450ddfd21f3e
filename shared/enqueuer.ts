import type { Queue } from 'bullmq';
import { Coalescer } from './coalescer.js';
import type { Queueing, ReconciliationRepository } from './db/reconciliation-repository.js';
import type { Logger } from './logger.js';
import { enqueueProcessing, type ProcessJobData } from './queue.js';

export interface Enqueuer {
  /**
   * Adds the jobs of committed intents, then records that they were added. Never
   * throws; false when the add failed (the reconciler adds them later).
   */
  enqueue(jobs: readonly ProcessJobData[]): Promise<boolean>;
}

export interface EnqueuerDeps {
  queue: Queue<ProcessJobData>;
  confirmations: Pick<ReconciliationRepository, 'confirmEnqueued'>;
  logger: Logger;
}

/**
 * The one way jobs are added (API and reconciler): the add, then its confirmation in
 * one statement per group, so the reconciler need only look at intents that were never
 * confirmed. Single jobs from concurrent callers share one addBulk, and the
 * confirmations of concurrent adds share one UPDATE. A confirmation that fails is only
 * logged: the reconciler finds the job alive and confirms it.
 */
export function createEnqueuer({ queue, confirmations, logger }: EnqueuerDeps): Enqueuer {
  const confirm = async (queueings: readonly Queueing[]): Promise<void> => {
    try {
      await confirmations.confirmEnqueued(queueings);
    } catch (err) {
      logger.warn(
        { err: { message: (err as Error).message }, count: queueings.length },
        'enqueue confirmation not written; the reconciler confirms it later',
      );
    }
  };
  const singleAdds = new Coalescer<ProcessJobData, boolean>(async (jobs) => {
    const added = await enqueueProcessing(queue, jobs, logger);
    return jobs.map(() => added);
  });
  const singleConfirms = new Coalescer<Queueing, void>(async (queueings) => {
    await confirm(queueings);
    return queueings.map(() => undefined);
  });

  return {
    async enqueue(jobs) {
      if (jobs.length === 0) return true;
      if (jobs.length === 1) {
        const [job] = jobs as [ProcessJobData];
        if (!(await singleAdds.submit(job))) return false;
        await singleConfirms.submit(job);
        return true;
      }
      if (!(await enqueueProcessing(queue, jobs, logger))) return false;
      await confirm(jobs);
      return true;
    },
  };
}
