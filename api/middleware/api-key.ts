import { createHash, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Context, Middleware } from 'koa';
import { AppError, type Logger } from '../../shared/index.js';
import { prefixMatcher } from '../paths.js';
import { createWindowCounter, outageReporter, retryAfterSeconds, type WindowCount } from './window-counter.js';

const REALM = 'Bearer realm="workflow-service"';
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A write is any method but a read: POST today, and whatever is added later. */
export const isWrite = (method: string): boolean => !READ_METHODS.has(method);

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** A key's stand-in wherever it must be named (rate-limit counters): never the key itself. */
export const keyFingerprint = (key: string): string => digest(key).toString('hex').slice(0, 16);

/** The key a request presents: `X-API-Key`, else `Authorization: Bearer <key>`. */
function presentedKey(ctx: Context): string | null {
  const header = ctx.get('X-API-Key');
  if (header) return header;
  const match = /^Bearer +(\S+) *$/i.exec(ctx.get('Authorization'));
  return match ? match[1]! : null;
}

/**
 * Compares against every configured key, always all of them, on SHA-256 digests:
 * equal lengths for timingSafeEqual, and the time spent says nothing about how
 * many characters matched or which key was close.
 */
function matchKey(given: string, keys: readonly Buffer[]): number {
  const candidate = digest(given);
  let found = -1;
  keys.forEach((key, i) => {
    if (timingSafeEqual(candidate, key) && found === -1) found = i;
  });
  return found;
}

export interface FailedKeyLimitOptions {
  redis: Redis;
  /** wrong keys a client address may present in a minute; past that, every key it presents is refused until the window ends */
  perMinute: number;
  /** Redis key prefix, as the rate limiter's */
  keyPrefix: string;
}

/** Counts wrong keys per client address in Redis (shared by every API process) and refuses a client past the limit. */
function failedKeyLimit({ redis, perMinute, keyPrefix }: FailedKeyLimitOptions, logger: Logger) {
  const counter = createWindowCounter(redis, `${keyPrefix}:auth-failures`);
  const outage = outageReporter(
    logger,
    'failed-key limit unavailable: keys are checked without it',
    'failed-key limit restored',
  );
  const refuse = (window: WindowCount) => {
    const seconds = retryAfterSeconds(window);
    return new AppError(
      'RATE_LIMITED',
      `more than ${perMinute} wrong API keys from this address in a minute; retry after ${seconds} s`,
      undefined,
      { 'Retry-After': String(seconds) },
    );
  };
  return {
    /**
     * Before a key is compared: a client over the limit is refused whatever it presents, so
     * a right key looks no different from a wrong one until its window ends.
     */
    async refuseIfBlocked(client: string): Promise<void> {
      let window: WindowCount;
      try {
        window = await counter.peek(`ip:${client}`);
        outage.succeeded();
      } catch (err) {
        // fails open, as the write limit does: a Redis outage must not become an auth outage
        outage.failed(err);
        return;
      }
      if (window.count >= perMinute) throw refuse(window);
    },
    async recordFailure(client: string): Promise<void> {
      try {
        const window = await counter.hit(`ip:${client}`);
        outage.succeeded();
        if (window.count === perMinute) {
          logger.warn(
            { client_ip: client, limit: perMinute, retry_after_s: retryAfterSeconds(window) },
            'too many wrong API keys: refusing every key from this address until its window ends',
          );
        }
      } catch (err) {
        outage.failed(err);
      }
    },
  };
}

/**
 * A middleware that lets a request through only with a valid key (a no-op when no keys
 * are configured). On success `ctx.state.apiKeyId` holds the key's fingerprint. With a
 * failed-key limit, wrong keys are counted per client address (`ctx.ip`).
 */
export function requireApiKey(
  keys: readonly string[],
  logger: Logger,
  limit: FailedKeyLimitOptions | null = null,
): Middleware {
  const digests = keys.map(digest);
  const fingerprints = keys.map(keyFingerprint);
  const failures = limit && limit.perMinute > 0 ? failedKeyLimit(limit, logger) : null;
  return async (ctx, next) => {
    if (digests.length > 0) {
      const given = presentedKey(ctx);
      // a request without a key guesses nothing: it is refused without a look at Redis
      if (given !== null) await failures?.refuseIfBlocked(ctx.ip);
      const index = given === null ? -1 : matchKey(given, digests);
      if (index === -1) {
        if (given !== null) await failures?.recordFailure(ctx.ip);
        const challenge = given === null ? REALM : `${REALM}, error="invalid_token"`;
        throw new AppError('UNAUTHORIZED', undefined, undefined, { 'WWW-Authenticate': challenge });
      }
      ctx.state.apiKeyId = fingerprints[index];
    }
    await next();
  };
}

export interface ApiKeyOptions {
  /** path prefixes where every method needs a key, reads included (the queue UI) */
  protectedPrefixes?: readonly string[];
  /** wrong keys counted per client address; none when absent */
  failedKeyLimit?: FailedKeyLimitOptions;
}

/**
 * The API's access rule: writes (any method but GET, HEAD and OPTIONS) need a key,
 * reads stay public, and everything under a protected prefix needs a key.
 */
export function apiKeyAuth(keys: readonly string[], logger: Logger, opts: ApiKeyOptions = {}): Middleware {
  if (keys.length === 0) logger.warn('API_KEYS is not set: writes are open to anyone who can reach the API');
  const isProtected = prefixMatcher(opts.protectedPrefixes ?? []);
  const check = requireApiKey(keys, logger, opts.failedKeyLimit ?? null);
  return async (ctx, next) => {
    if (isWrite(ctx.method) || isProtected(ctx.path) !== null) return check(ctx, next);
    await next();
  };
}
