import type { Logger } from './logger.js';

export interface ShutdownStep {
  name: string;
  /** `deadline` aborts when the close's time is up: a step that can stop harder (drop a connection) does so then */
  run(deadline: AbortSignal): Promise<unknown> | unknown;
}

export interface CloseOptions {
  /** the whole close; a step still running then is abandoned */
  timeoutMs: number;
  /** what the steps after an abandoned one get, together, to release their connections */
  graceMs?: number;
}

/** `clean`: every step ended (a failed one is logged); `cut`: the deadline abandoned at least one. */
export type CloseOutcome = 'clean' | 'cut';

/** How long the steps after the deadline get, in all, before the rest are skipped. */
export const AFTER_DEADLINE_MS = 1000;

/**
 * A close() that is safe to call twice (the first call's promise is kept), runs every step
 * in order even when an earlier one fails, and ends within `timeoutMs` + `graceMs`
 * whatever a step waits for. At the deadline the running step is abandoned (logged) and
 * the remaining ones share the grace window, which is enough to drop connections; a step
 * still running at its end is abandoned too, and those after it are skipped (logged):
 * the process exits next, and exiting releases whatever they would have.
 */
export function closeInOrder(
  steps: readonly ShutdownStep[],
  logger: Logger,
  { timeoutMs, graceMs = AFTER_DEADLINE_MS }: CloseOptions,
): () => Promise<CloseOutcome> {
  let closing: Promise<CloseOutcome> | undefined;
  return () => {
    closing ??= (async () => {
      // ref'd timers: a step waiting on nothing that keeps Node alive must not let it exit 0 unnoticed
      const deadline = abortAfter(timeoutMs);
      let grace: ReturnType<typeof abortAfter> | undefined;
      let window = deadline.signal;
      let outcome: CloseOutcome = 'clean';
      try {
        for (const [index, step] of steps.entries()) {
          if (window.aborted) {
            if (!grace) {
              grace = abortAfter(graceMs);
              window = grace.signal;
            } else {
              const skipped = steps.slice(index).map((s) => s.name);
              logger.warn({ steps: skipped, grace_ms: graceMs }, 'shutdown steps skipped: no time left');
              break;
            }
          }
          const ended = await untilAborted(runStep(step, deadline.signal, logger), window);
          if (!ended) {
            outcome = 'cut';
            logger.warn(
              { step: step.name, timeout_ms: timeoutMs, after_deadline: grace !== undefined },
              'shutdown step still running at the deadline: abandoned',
            );
          }
        }
      } finally {
        deadline.clear();
        grace?.clear();
      }
      return outcome;
    })();
    return closing;
  };
}

function abortAfter(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

async function runStep(step: ShutdownStep, deadline: AbortSignal, logger: Logger): Promise<void> {
  try {
    await step.run(deadline);
  } catch (err) {
    logger.error({ err, step: step.name }, 'shutdown step failed');
  }
}

/** True when `work` ended before `signal` aborted; false (work left running) otherwise. */
export function untilAborted(work: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      },
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      },
    );
  });
}

/**
 * SIGTERM and SIGINT lead to close(), then exit: 0 when it was clean, 1 when the
 * deadline cut it (or close threw). A second signal exits 1 at once. A process started
 * with an IPC channel (npm start does) also closes when that channel does: its parent is gone.
 */
export function exitOnSignals(close: () => Promise<CloseOutcome>, logger: Logger): void {
  let stopping = false;
  const begin = (reason: string) => {
    stopping = true;
    logger.info({ signal: reason }, 'shutting down');
    close().then(
      (outcome) => process.exit(outcome === 'clean' ? 0 : 1),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopping) return begin(signal);
    logger.warn({ signal }, 'second signal while shutting down: exiting now');
    process.exit(1);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (process.channel) {
    process.once('disconnect', () => {
      if (!stopping) begin('parent gone');
    });
  }
}
