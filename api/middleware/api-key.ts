import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { AppError, type Logger } from '../../shared/index.js';
import { prefixMatcher } from '../paths.js';

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

/**
 * A middleware that lets a request through only with a valid key (a no-op when no keys
 * are configured). On success `ctx.state.apiKeyId` holds the key's fingerprint.
 * Mount it wherever a whole area needs a key, e.g. `router.use('/admin', requireApiKey(keys))`.
 */
export function requireApiKey(keys: readonly string[]): Middleware {
  const digests = keys.map(digest);
  const fingerprints = keys.map(keyFingerprint);
  return async (ctx, next) => {
    if (digests.length > 0) {
      const given = presentedKey(ctx);
      const index = given === null ? -1 : matchKey(given, digests);
      if (index === -1) {
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
}

/**
 * The API's access rule: writes (any method but GET, HEAD and OPTIONS) need a key,
 * reads stay public, and everything under a protected prefix needs a key.
 */
export function apiKeyAuth(keys: readonly string[], logger: Logger, opts: ApiKeyOptions = {}): Middleware {
  if (keys.length === 0) logger.warn('API_KEYS is not set: writes are open to anyone who can reach the API');
  const isProtected = prefixMatcher(opts.protectedPrefixes ?? []);
  const check = requireApiKey(keys);
  return async (ctx, next) => {
    if (isWrite(ctx.method) || isProtected(ctx.path) !== null) return check(ctx, next);
    await next();
  };
}
