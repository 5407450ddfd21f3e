import bodyParser from 'koa-bodyparser';
import type { Middleware } from 'koa';
import { AppError } from '../../shared/index.js';

/**
 * JSON bodies only, up to `limit`: a body of another type is 415, an oversized one
 * 413, one that does not parse 400 — all in the contract's error shape.
 */
export function jsonBody(limit: string): Middleware {
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: limit,
    strict: false,
    // the type was checked below; the parser's own list would skip e.g. application/merge-patch+json
    detectJSON: () => true,
    // a `__proto__` key is parsed as the plain data it is, and the schemas refuse it
    // with a 422 naming the field (the parser would call it malformed JSON)
    onProtoPoisoning: 'ignore',
  } as bodyParser.Options) as unknown as Middleware;
  const noop = async () => undefined;
  return async (ctx, next) => {
    if (ctx.request.length || ctx.get('Transfer-Encoding')) {
      if (!ctx.is('application/json', '+json')) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
      try {
        await parse(ctx, noop);
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 413) throw new AppError('PAYLOAD_TOO_LARGE', `request body exceeds ${limit}`);
        if (status === 415) throw new AppError('UNSUPPORTED_MEDIA_TYPE');
        throw new AppError('MALFORMED_JSON');
      }
    }
    await next();
  };
}
