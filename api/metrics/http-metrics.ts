import type { Middleware } from 'koa';
import { prefixMatcher } from '../paths.js';
import type { ApiMetrics } from './api-metrics.js';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Mounted sub-applications whose own routes are not this app's route templates. */
const mountOf = prefixMatcher(['/admin/queues']);

/**
 * The label a request is counted under: the matched route template (`/records/:id`),
 * the mount it went to, or `unmatched` — never the raw path, which a client controls
 * and would make one time series per URL.
 */
function routeLabel(path: string, matched: unknown): string {
  const mount = mountOf(path);
  if (mount !== null) return mount;
  return typeof matched === 'string' ? matched : 'unmatched';
}

/** Counts and times every request once its final status is known (mount outside the error handler). */
export function httpMetrics(metrics: ApiMetrics): Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const path = ctx.path;
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER';
      metrics.observeRequest(method, routeLabel(path, ctx._matchedRoute), ctx.status, seconds);
    }
  };
}
