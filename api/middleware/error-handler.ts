import type { Middleware } from 'koa';
import { AppError, ERROR_CATALOGUE, isDependencyUnavailable, type Logger } from '../../shared/index.js';

/** Seconds a client should wait after a 503: a Redis failover or a database restart is over in a few. */
export const UNAVAILABLE_RETRY_AFTER = '2';

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
          ? new AppError('SERVICE_UNAVAILABLE', undefined, undefined, { 'Retry-After': UNAVAILABLE_RETRY_AFTER })
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
