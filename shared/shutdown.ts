import type { Logger } from './logger.js';

export interface ShutdownStep {
  name: string;
  run(): Promise<unknown> | unknown;
}

/**
 * A close() that is safe to call twice (the first call's promise is kept) and runs
 * every step in order even when an earlier one fails.
 */
export function closeInOrder(steps: readonly ShutdownStep[], logger: Logger): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      for (const step of steps) {
        try {
          await step.run();
        } catch (err) {
          logger.error({ err, step: step.name }, 'shutdown step failed');
        }
      }
    })();
    return closing;
  };
}

/** SIGTERM and SIGINT both lead to close(), then exit 0 (1 if close itself throws). */
export function exitOnSignals(close: () => Promise<void>, logger: Logger): void {
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
