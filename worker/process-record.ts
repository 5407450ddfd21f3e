import type { Job } from 'bullmq';
import {
  PROCESSABLE_STATUS,
  type Logger,
  type ProcessJobData,
  type QueuedRecord,
  type TransitionInput,
  type TransitionsRepository,
} from '../shared/index.js';
import {
  isPermanent,
  messageOf,
  RetryLaterError,
  ShutdownAbortError,
  type CategoryProcessor,
  type Processors,
} from './processors/index.js';
import { runProcessor } from './run-processor.js';

/** How one processor run ended, for the per-category metrics. */
export type ProcessorOutcome = 'processed' | 'failed' | 'retried';

export interface ProcessRecordDeps {
  transitions: TransitionsRepository;
  /** loads a record with its queueing, possibly in one query with other jobs' */
  loadRecord(id: string): Promise<QueuedRecord | null>;
  /** applies one outcome with its guard, possibly grouped with others; false when the guard matched nothing */
  applyTransition(transition: TransitionInput): Promise<boolean>;
  processors: Processors;
  logger: Logger;
  maxAttempts: number;
  /** aborted when the worker shuts down: running processors are told, and their attempts given up */
  shutdown?: AbortSignal;
  /** called once per processor run */
  onProcessorRun?(processor: CategoryProcessor, outcome: ProcessorOutcome, seconds: number): void;
}

/**
 * How a job ended, returned to BullMQ (it is the job's return value, shown in the
 * queue UI) and counted by the worker's metrics: a transition written, or nothing to
 * do because the record was no longer pending for this queueing (`skipped`) or
 * another delivery won the guard first (`superseded`).
 */
export type JobOutcome = 'processed' | 'failed' | 'skipped' | 'superseded';

/**
 * A transient failure whose answer asked for a wait: this job's next attempt waits at
 * least that long. The job's options are its copy in this worker; BullMQ reads the
 * backoff from them when it schedules the retry, and Redis keeps the original.
 */
function honourRetryAfter(job: Job<ProcessJobData>, err: unknown): void {
  if (!(err instanceof RetryLaterError) || err.retryAfterMs === null) return;
  const backoff = job.opts.backoff;
  const base = typeof backoff === 'number' ? backoff : (backoff?.delay ?? 0);
  const planned = typeof backoff === 'object' && backoff.type === 'exponential' ? base * 2 ** job.attemptsMade : base;
  job.opts.backoff = { type: 'fixed', delay: Math.max(err.retryAfterMs, planned) };
}

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
  shutdown,
  onProcessorRun,
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
    const attempts = job.opts.attempts ?? maxAttempts;
    const lastAttempt = attempt >= attempts;
    const base = { recordId, seq, attempt, requestId, jobId: job.id ?? null };
    const processor = processors.for(found.record.category);
    const ctx = { attempt, maxAttempts: attempts, requestId, jobId: job.id ?? '', log };
    const started = performance.now();
    const ran = (outcome: ProcessorOutcome) =>
      onProcessorRun?.(processor, outcome, (performance.now() - started) / 1000);
    let transition: TransitionInput;
    try {
      const result = await runProcessor(processor, found.record, ctx, shutdown);
      ran('processed');
      transition = { ...base, to: 'processed', result };
    } catch (err) {
      // an attempt given up at shutdown never fails the record: another worker takes it again
      const abandoned = err instanceof ShutdownAbortError;
      if (abandoned || (!isPermanent(err) && !lastAttempt)) {
        ran('retried');
        await transitions.recordFailedAttempt(recordId, seq, attempt, messageOf(err));
        log.warn({ attempt, err: { message: messageOf(err) } }, 'attempt failed, will retry');
        honourRetryAfter(job, err);
        throw err;
      }
      ran('failed');
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
