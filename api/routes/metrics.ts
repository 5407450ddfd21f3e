import type Router from '@koa/router';
import type { RouteDeps } from '../deps.js';

/** GET /metrics: this process's Prometheus metrics (the queue gauges are read from Redis now). */
export function registerMetricsRoutes(router: Router, { metrics }: RouteDeps): void {
  router.get('/metrics', async (ctx) => {
    const text = await metrics.registry.metrics();
    ctx.type = metrics.registry.contentType;
    ctx.body = text;
  });
}
