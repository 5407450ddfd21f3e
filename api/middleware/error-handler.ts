import type { Middleware } from 'koa';
import { AppError, ERROR_CATALOGUE, type Logger } from '../../shared/index.js';

/**
 * Errors that say a dependency cannot be reached rather than that something is broken:
 * connections refused or dropped, Knex finding no free connection in time, PostgreSQL
 * shutting down or out of connections, SQLite still locked after its retries.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  'SQLITE_BUSY',
]);

export function isDependencyUnavailable(err: unknown): boolean {
  const { name, code } = (err ?? {}) as { name?: string; code?: unknown };
  return name === 'KnexTimeoutError' || (typeof code === 'string' && UNAVAILABLE_CODES.has(code));
}

/** Every error, unknown routes included, leaves as `{error: {code, message, details?}, request_id}`. */
export function errorHandler(logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      // the router answers unmatched paths and methods with a bare status (405 keeps its Allow header)
      if (ctx.body === undefined) {
        if (ctx.status === 404) throw new AppError('NOT_FOUND');
        if (ctx.status === 405 || ctx.status === 501) throw new AppError('METHOD_NOT_ALLOWED');
      }
    } catch (err) {
      const requestId = ctx.state.requestId as string;
      let appError = err instanceof AppError ? err : null;
      if (!appError) {
        const unavailable = isDependencyUnavailable(err);
        logger.error(
          { err, request_id: requestId, method: ctx.method, path: ctx.path },
          unavailable ? 'dependency unavailable' : 'unhandled error',
        );
        appError = unavailable
          ? new AppError('SERVICE_UNAVAILABLE')
          : new AppError('INTERNAL_ERROR', ERROR_CATALOGUE.INTERNAL_ERROR.message);
      }
      ctx.status = appError.status;
      for (const [name, value] of Object.entries(appError.headers ?? {})) ctx.set(name, value);
      ctx.body = {
        error: {
          code: appError.code,
          message: appError.message,
          ...(appError.details === undefined ? {} : { details: appError.details }),
        },
        request_id: requestId,
      };
    }
  };
}
