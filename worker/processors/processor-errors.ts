import { UnrecoverableError } from 'bullmq';

/** A transient failure whose answer asked for a wait before the next attempt (Retry-After). */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
  ) {
    super(message);
    this.name = 'RetryLaterError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** The processor ran past its category's timeout: transient, and whatever it returns later is dropped. */
export class ProcessorTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`processor timed out after ${timeoutMs} ms`);
    this.name = 'ProcessorTimeoutError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** The worker is shutting down: the attempt is given up and the record left pending for another worker. */
export class ShutdownAbortError extends Error {
  constructor() {
    super('worker shutting down: attempt abandoned');
    this.name = 'ShutdownAbortError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/**
 * A failure that retrying cannot cure: BullMQ's UnrecoverableError (by name too, since a
 * processor module may bring its own copy of BullMQ) or any error with `permanent: true`.
 */
export function isPermanent(err: unknown): boolean {
  if (err instanceof UnrecoverableError) return true;
  const { name, permanent } = (err ?? {}) as { name?: unknown; permanent?: unknown };
  return name === 'UnrecoverableError' || permanent === true;
}

export const messageOf = (err: unknown) =>
  (err instanceof Error ? err.message : typeof err === 'string' ? err : String(err)) || 'processing failed';
