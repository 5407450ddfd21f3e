import { UnrecoverableError, type Job } from 'bullmq';
import {
  PROCESSABLE_STATUS,
  type Logger,
  type ProcessJobData,
  type QueuedRecord,
  type TransitionInput,
  type TransitionsRepository,
} from '../shared/index.js';
import { processorFor, type ProcessorRegistry } from './processors/index.js';

export interface ProcessRecordDeps {
  transitions: TransitionsRepository;
  /** loads a record with its queueing, possibly in one query with other jobs' */
  loadRecord(id: string): Promise<QueuedRecord | null>;
  /** applies one outcome with its guard, possibly grouped with others; false when the guard matched nothing */
  applyTransition(transition: TransitionInput): Promise<boolean>;
  processors: ProcessorRegistry;
  logger: Logger;
  maxAttempts: number;
}

/**
 * How a job ended, returned to BullMQ (it is the job's return value, shown in the
 * queue UI) and counted by the worker's metrics: a transition written, or nothing to
 * do because the record was no longer pending for this queueing (`skipped`) or
 * another delivery won the guard first (`superseded`).
 */
export type JobOutcome = 'processed' | 'failed' | 'skipped' | 'superseded';

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'processing failed';

/**
 * The job handler: run the record's processor and apply the guarded transition.
 * Transient errors are rethrown so BullMQ retries them with backoff; the last
 * attempt's error, or any permanent one, fails the record instead.
 */
export function createRecordHandler({
  transitions,
  loadRecord,
  applyTransition,
  processors,
  logger,
  maxAttempts,
}: ProcessRecordDeps) {
  return async function processRecord(job: Job<ProcessJobData>): Promise<JobOutcome> {
    const { recordId, seq, requestId } = job.data;
    // a simple child: adds fields only, with no per-job copy of streams and serializers
    const log = logger.child({ record_id: recordId, job_id: job.id, request_id: requestId }, true);
    const found = await loadRecord(recordId);
    if (!found || found.record.status !== PROCESSABLE_STATUS || found.queueSeq !== seq) {
      // guard: a redelivered or stale job finds the record no longer pending for its queueing
      log.info({ status: found?.record.status ?? null }, 'job skipped: record not pending for this queueing');
      return 'skipped';
    }

    const attempt = job.attemptsMade + 1;
    const lastAttempt = attempt >= (job.opts.attempts ?? maxAttempts);
    const base = { recordId, seq, attempt, requestId, jobId: job.id ?? null };
    let transition: TransitionInput;
    try {
      const result = await processorFor(processors, found.record.category)(found.record);
      transition = { ...base, to: 'processed', result };
    } catch (err) {
      if (!(err instanceof UnrecoverableError) && !lastAttempt) {
        await transitions.recordFailedAttempt(recordId, seq, attempt, messageOf(err));
        log.warn({ attempt, err: { message: messageOf(err) } }, 'attempt failed, will retry');
        throw err;
      }
      transition = { ...base, to: 'failed', error: messageOf(err) };
    }

    if (await applyTransition(transition)) {
      log.info({ from: PROCESSABLE_STATUS, to: transition.to, attempt }, 'transition');
      return transition.to;
    }
    log.info({ to: transition.to, attempt }, 'transition skipped: guard matched no row');
    return 'superseded';
  };
}
