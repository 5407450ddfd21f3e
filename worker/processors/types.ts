import type { JsonObject, Logger, ProcessorKind, WorkflowRecord } from '../../shared/index.js';

/** What a processor is told about the attempt it runs. */
export interface ProcessorContext {
  /** this attempt, from 1 */
  attempt: number;
  /** attempts this queueing may take (MAX_ATTEMPTS) */
  maxAttempts: number;
  /** the request that queued the record */
  requestId: string | null;
  /** the job running it: the same on every attempt of one queueing */
  jobId: string;
  /** aborted at the category's timeout and when the worker shuts down */
  signal: AbortSignal;
  /** carries record_id, job_id and request_id */
  log: Logger;
}

/**
 * Turns a pending record into its result. An error with `permanent: true`, or BullMQ's
 * UnrecoverableError, fails the record at once; any other error is transient and retried.
 */
export type Processor = (record: WorkflowRecord, ctx: ProcessorContext) => Promise<JsonObject> | JsonObject;

/** Processors given in code, by category (tests, embedding); they win over the categories file. */
export type ProcessorRegistry = ReadonlyMap<string, Processor>;

/** The processor a category's records run through, as the categories file (or code) sets it. */
export interface CategoryProcessor {
  kind: ProcessorKind;
  run: Processor;
  timeoutMs: number;
  /** the category in metrics: its name when listed, else `(unlisted)`, so labels stay few */
  label: string;
}
