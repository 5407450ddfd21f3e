import type { Redis } from 'ioredis';
import { withTimeout, type Logger } from '../../shared/index.js';

export const WINDOW_MS = 60_000;
const REDIS_TIMEOUT_MS = 500;

export interface WindowCount {
  count: number;
  /** milliseconds until the window ends */
  resetMs: number;
}

/**
 * Per-client counts in Redis, so every API process shares them: a client's window starts
 * at its first hit and lasts WINDOW_MS. Each call is one atomic round trip, given up on
 * after 500 ms (then it throws, and the caller decides how to fail).
 */
export interface WindowCounter {
  /** Counts one more for `client` and returns the window's count. */
  hit(client: string): Promise<WindowCount>;
  /** The window's count without adding to it. */
  peek(client: string): Promise<WindowCount>;
}

export function createWindowCounter(redis: Redis, keyPrefix: string): WindowCounter {
  // until the connection first comes up, a call waits for it (within the timeout): a
  // process that has just started should count its first requests, not wave them through
  let connected = redis.status === 'ready';
  const firstReady = new Promise<void>((resolve) => redis.once('ready', resolve)).then(() => {
    connected = true;
  });

  async function run(build: () => ReturnType<Redis['multi']>): Promise<Array<[Error | null, unknown]>> {
    const transaction = (connected ? Promise.resolve() : firstReady).then(() => build().exec());
    // a late failure after the timeout has nobody waiting for it
    transaction.catch(() => undefined);
    const replies = await withTimeout(transaction, REDIS_TIMEOUT_MS, 'Redis count timed out');
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error('Redis count aborted');
    return replies;
  }

  return {
    async hit(client) {
      const key = `${keyPrefix}:${client}`;
      // create the window with its expiry if absent, then count
      const replies = await run(() => redis.multi().set(key, 0, 'PX', WINDOW_MS, 'NX').incr(key).pttl(key));
      return { count: Number(replies[1]![1]), resetMs: Number(replies[2]![1]) };
    },
    async peek(client) {
      const key = `${keyPrefix}:${client}`;
      const replies = await run(() => redis.multi().get(key).pttl(key));
      return { count: Number(replies[0]![1] ?? 0), resetMs: Number(replies[1]![1]) };
    },
  };
}

/** Seconds until a window ends, for `Retry-After` (a whole window when Redis gave no expiry). */
export const retryAfterSeconds = (window: WindowCount): number =>
  window.resetMs > 0 ? Math.ceil(window.resetMs / 1000) : WINDOW_MS / 1000;

/** Logs the first failure of an outage and its end, once each, whatever the number of requests in between. */
export function outageReporter(logger: Logger, down: string, restored: string) {
  let reported = false;
  return {
    failed(err: unknown) {
      if (!reported) logger.warn({ err: { message: (err as Error).message } }, down);
      reported = true;
    },
    succeeded() {
      if (reported) logger.info(restored);
      reported = false;
    },
  };
}
