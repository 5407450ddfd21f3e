import type { Redis } from 'ioredis';
import type { Middleware } from 'koa';
import { AppError, withTimeout, type Logger } from '../../shared/index.js';
import { isWrite } from './api-key.js';

const WINDOW_MS = 60_000;
const REDIS_TIMEOUT_MS = 500;

export interface RateLimitOptions {
  redis: Redis;
  /** writes allowed per client per minute */
  perMinute: number;
  /** Redis key prefix, so deployments (and tests) sharing a Redis keep separate counts */
  keyPrefix: string;
  logger: Logger;
}

/**
 * Counts writes per client in Redis, so every API process shares one count: per API
 * key when the request carried one (`ctx.state.apiKeyId`, set by the auth middleware),
 * else per IP. A window starts at a client's first write and lasts a minute; its
 * remaining time is the `Retry-After` of a refused write.
 *
 * Fails open: when Redis does not answer, the write goes ahead and a warning is
 * logged once per outage, because a record is stored in the database and queued later
 * anyway — the limiter must not turn a Redis outage into a write outage.
 */
export function rateLimit({ redis, perMinute, keyPrefix, logger }: RateLimitOptions): Middleware {
  let outageReported = false;
  // until the connection first comes up, a check waits for it (within the timeout): a
  // process that has just started should count its first writes, not wave them through
  let connected = redis.status === 'ready';
  const firstReady = new Promise<void>((resolve) => redis.once('ready', resolve)).then(() => {
    connected = true;
  });

  async function count(client: string): Promise<{ count: number; resetMs: number }> {
    const key = `${keyPrefix}:rate-limit:${client}`;
    // one round trip, atomic: create the window with its expiry if absent, then count
    const transaction = (connected ? Promise.resolve() : firstReady).then(() =>
      redis.multi().set(key, 0, 'PX', WINDOW_MS, 'NX').incr(key).pttl(key).exec(),
    );
    // a late failure after the timeout has nobody waiting for it
    transaction.catch(() => undefined);
    const replies = await withTimeout(transaction, REDIS_TIMEOUT_MS, 'rate limit check timed out');
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error('rate limit transaction aborted');
    return { count: Number(replies[1]![1]), resetMs: Number(replies[2]![1]) };
  }

  return async (ctx, next) => {
    if (!isWrite(ctx.method)) return next();
    const apiKeyId = ctx.state.apiKeyId as string | undefined;
    const client = apiKeyId ? `key:${apiKeyId}` : `ip:${ctx.ip}`;
    let window: { count: number; resetMs: number } | null = null;
    try {
      window = await count(client);
      if (outageReported) logger.info('rate limiting restored');
      outageReported = false;
    } catch (err) {
      if (!outageReported) {
        logger.warn({ err: { message: (err as Error).message } }, 'rate limit unavailable: allowing writes');
      }
      outageReported = true;
    }
    if (window && window.count > perMinute) {
      const seconds = window.resetMs > 0 ? Math.ceil(window.resetMs / 1000) : WINDOW_MS / 1000;
      throw new AppError(
        'RATE_LIMITED',
        `more than ${perMinute} writes in a minute; retry after ${seconds} s`,
        undefined,
        { 'Retry-After': String(seconds) },
      );
    }
    await next();
  };
}
