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
  /** aborted when the process begins to shut down: what is gathered is written, and each confirmation after it at once */
  shutdown?: AbortSignal;
}

/** How long confirmations gather before they are written together. */
const CONFIRM_DELAY_MS = 200;

/**
 * The one way jobs are added (API and reconciler): the add, then its confirmation, so
 * the reconciler need only look at intents that were never confirmed. Single jobs from
 * concurrent callers share one addBulk. A caller does not wait for the confirmation: it
 * is bookkeeping for the reconciler, and one missing (failed, or lost with the process)
 * only means the reconciler finds the job alive and confirms it. So confirmations gather
 * for CONFIRM_DELAY_MS and are written in one statement: each is a write, and on SQLite
 * every write waits for the one lock the workers' transitions hold too.
 */
export function createEnqueuer({ queue, confirmations, logger, shutdown }: EnqueuerDeps): Enqueuer {
  const inFlight = new Set<Promise<void>>();
  let gathered: Queueing[] = [];
  let timer: NodeJS.Timeout | undefined;
  const write = async (queueings: readonly Queueing[]): Promise<void> => {
    try {
      await confirmations.confirmEnqueued(queueings);
    } catch (err) {
      logger.warn(
        { err: { message: (err as Error).message }, count: queueings.length },
        'enqueue confirmation not written; the reconciler confirms it later',
      );
    }
  };
  const writeGathered = () => {
    clearTimeout(timer);
    timer = undefined;
    if (gathered.length === 0) return;
    const writing = write(gathered);
    gathered = [];
    inFlight.add(writing);
    void writing.finally(() => inFlight.delete(writing));
  };
  const confirm = (queueings: readonly Queueing[]) => {
    gathered.push(...queueings);
    if (shutdown?.aborted) writeGathered();
    else timer ??= setTimeout(writeGathered, CONFIRM_DELAY_MS);
  };
  shutdown?.addEventListener('abort', writeGathered, { once: true });
  const singleAdds = new Coalescer<ProcessJobData, boolean>(async (jobs) => {
    const added = await enqueueProcessing(queue, jobs, logger);
    return jobs.map(() => added);
  });

  return {
    async enqueue(jobs) {
      if (jobs.length === 0) return true;
      const added =
        jobs.length === 1 ? await singleAdds.submit(jobs[0]!) : await enqueueProcessing(queue, jobs, logger);
      if (added) confirm(jobs);
      return added;
    },
    async flush() {
      writeGathered();
      await Promise.all(inFlight);
    },
  };
}
