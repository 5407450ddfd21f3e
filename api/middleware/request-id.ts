import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Echoes a safe client X-Request-ID, otherwise makes a UUID v4. */
export function requestId(): Middleware {
  return async (ctx, next) => {
    const given = ctx.get('X-Request-ID');
    const id = SAFE_REQUEST_ID.test(given) ? given : randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-ID', id);
    await next();
  };
}
