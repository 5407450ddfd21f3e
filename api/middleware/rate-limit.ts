import type { Redis } from 'ioredis';
import type { Middleware } from 'koa';
import { AppError, type Logger } from '../../shared/index.js';
import { isWrite } from './api-key.js';
import { createWindowCounter, outageReporter, retryAfterSeconds, type WindowCount } from './window-counter.js';

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
 * else per client address (`ctx.ip`, see TRUST_PROXY). A window starts at a client's
 * first write and lasts a minute; its remaining time is the `Retry-After` of a refused write.
 *
 * Fails open: when Redis does not answer, the write goes ahead and a warning is
 * logged once per outage, because a record is stored in the database and queued later
 * anyway — the limiter must not turn a Redis outage into a write outage.
 */
export function rateLimit({ redis, perMinute, keyPrefix, logger }: RateLimitOptions): Middleware {
  const counter = createWindowCounter(redis, `${keyPrefix}:rate-limit`);
  const outage = outageReporter(logger, 'rate limit unavailable: allowing writes', 'rate limiting restored');

  return async (ctx, next) => {
    if (!isWrite(ctx.method)) return next();
    const apiKeyId = ctx.state.apiKeyId as string | undefined;
    const client = apiKeyId ? `key:${apiKeyId}` : `ip:${ctx.ip}`;
    let window: WindowCount | null = null;
    try {
      window = await counter.hit(client);
      outage.succeeded();
    } catch (err) {
      outage.failed(err);
    }
    if (window && window.count > perMinute) {
      const seconds = retryAfterSeconds(window);
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
