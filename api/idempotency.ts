import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import { AppError, type StoredResponse } from '../shared/index.js';

const MAX_KEY_LENGTH = 255;

/** The request's Idempotency-Key, or null without one; an empty or over-long key is 422. */
export function idempotencyKeyOf(ctx: Context): string | null {
  if (ctx.headers['idempotency-key'] === undefined) return null;
  const key = ctx.get('Idempotency-Key');
  if (key.trim() === '' || key.length > MAX_KEY_LENGTH) {
    throw new AppError('VALIDATION_ERROR', undefined, [
      { field: 'header.Idempotency-Key', message: `Idempotency-Key must be 1-${MAX_KEY_LENGTH} characters` },
    ]);
  }
  return key;
}

/** What makes two requests "the same request": method, path, query and body. */
export function requestHashOf(ctx: Context): string {
  return createHash('sha256')
    .update(JSON.stringify([ctx.method, ctx.path, ctx.querystring, ctx.request.body ?? null]))
    .digest('hex');
}

/** Answers with the stored first response, or 422 when the key came with another request. */
export function replayStoredResponse(ctx: Context, stored: StoredResponse, requestHash: string): void {
  if (stored.requestHash !== requestHash) throw new AppError('IDEMPOTENCY_KEY_REUSED');
  ctx.status = stored.statusCode;
  if (stored.location) ctx.set('Location', stored.location);
  ctx.set('Idempotent-Replayed', 'true');
  ctx.body = stored.body;
}
