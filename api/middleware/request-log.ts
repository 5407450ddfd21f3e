import type { Middleware } from 'koa';
import type { Logger } from '../../shared/index.js';

/** One bunyan line per request, written after the error middleware has set the final status. */
export function requestLog(logger: Logger): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const line = {
        request_id: ctx.state.requestId as string,
        method: ctx.method,
        path: ctx.path,
        // the socket's peer, or the client a trusted proxy named (TRUST_PROXY)
        client_ip: ctx.ip,
        status_code: ctx.status,
        duration_ms: Number(process.hrtime.bigint() - started) / 1e6,
      };
      if (ctx.status >= 500) logger.error(line, 'request');
      else logger.info(line, 'request');
    }
  };
}
