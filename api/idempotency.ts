import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import { AppError, canonicalJson, type IdempotentRequest } from '../shared/index.js';

const MAX_KEY_LENGTH = 255;
// printable ASCII: a key travels in a header as is
const KEY = new RegExp(`^[\\x20-\\x7e]{1,${MAX_KEY_LENGTH}}$`);

/**
 * The request's Idempotency-Key in its client's scope (the API key that sent it, or one
 * scope without keys), with the hash of what it asks for; null without a key. A key that
 * is empty, too long or not printable ASCII is 422.
 *
 * Two requests are the same when they ask for the same operation with the same JSON value:
 * the body is hashed in canonical form, so key order and whitespace do not matter.
 */
export function idempotentRequestOf(ctx: Context, operation: string, request: unknown): IdempotentRequest | null {
  if (ctx.headers['idempotency-key'] === undefined) return null;
  const key = ctx.get('Idempotency-Key');
  if (!KEY.test(key)) {
    throw new AppError('VALIDATION_ERROR', undefined, [
      {
        field: 'header.Idempotency-Key',
        message: `Idempotency-Key must be 1-${MAX_KEY_LENGTH} printable ASCII characters`,
        type: 'idempotency_key.invalid',
      },
    ]);
  }
  const requestHash = createHash('sha256')
    .update(canonicalJson([operation, request]))
    .digest('hex');
  return { scope: (ctx.state.apiKeyId as string | undefined) ?? '', key, requestHash };
}
