import type { Queue } from 'bullmq';
import { Coalescer } from './coalescer.js';
import type { Queueing, ReconciliationRepository } from './db/reconciliation-repository.js';
import type { Logger } from './logger.js';
import { enqueueProcessing, type ProcessJobData } from './queue.js';

export interface Enqueuer {
  /**
   * Adds the jobs of committed intents; once they are added, records that they were (in
   * the background). Never throws; false when the add failed (the reconciler adds them later).
   */
  enqueue(jobs: readonly ProcessJobData[]): Promise<boolean>;
  /** Resolves once every confirmation of the adds so far is written (or failed and logged). */
  flush(): Promise<void>;
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
 * confirmations of concurrent adds share one UPDATE. A caller does not wait for the
 * confirmation: it is bookkeeping for the reconciler, and one missing (failed, or lost
 * with the process) only means the reconciler finds the job alive and confirms it.
 * Waiting for it cost a quarter more API CPU per single POST ?process=true (SQLite, 50
 * connections); in the background, with the confirmations of the requests that arrive
 * meanwhile in one UPDATE, it costs a few per cent.
 */
export function createEnqueuer({ queue, confirmations, logger }: EnqueuerDeps): Enqueuer {
  const inFlight = new Set<Promise<void>>();
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
  const track = (confirmation: Promise<void>) => {
    inFlight.add(confirmation);
    void confirmation.finally(() => inFlight.delete(confirmation));
  };

  return {
    async enqueue(jobs) {
      if (jobs.length === 0) return true;
      if (jobs.length === 1) {
        const [job] = jobs as [ProcessJobData];
        if (!(await singleAdds.submit(job))) return false;
        track(singleConfirms.submit(job));
        return true;
      }
      if (!(await enqueueProcessing(queue, jobs, logger))) return false;
      track(confirm(jobs));
      return true;
    },
    async flush() {
      await Promise.all(inFlight);
    },
  };
}
