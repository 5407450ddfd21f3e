import Router from '@koa/router';
import Koa from 'koa';
import { queueBoard } from './admin/index.js';
import { createApiMetrics, httpMetrics } from './metrics/index.js';
import { apiKeyAuth } from './middleware/api-key.js';
import { clientAddress } from './middleware/client-address.js';
import { errorHandler } from './middleware/error-handler.js';
import { jsonBody } from './middleware/json-body.js';
import { rateLimit } from './middleware/rate-limit.js';
import { requestId } from './middleware/request-id.js';
import { requestLog } from './middleware/request-log.js';
import { securityHeaders } from './middleware/security-headers.js';
import { registerDashboardRoutes } from './routes/dashboard.js';
import { registerCategoriesRoutes } from './routes/categories.js';
import { registerDocsRoutes } from './routes/docs.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetricsRoutes } from './routes/metrics.js';
import { registerRecordsRoutes } from './routes/records.js';
import { registerReportsRoutes } from './routes/reports.js';
import { createRecordsService } from './services/records-service.js';
import { registerEventsRoutes } from './routes/events.js';
import { registerWebhooksRoutes } from './routes/webhooks.js';
import { createWebhooksService } from './services/webhooks-service.js';
import { createEventsHub } from './events-hub.js';
import { createWebhookQueue, relayOutbox } from '../shared/index.js';
import type { AppDeps, RouteDeps } from './deps.js';

export type { AppDeps, RouteDeps } from './deps.js';

/** Every route of the API; the OpenAPI document describes each one (a test holds them together). */
export function createRouter(deps: RouteDeps): Router {
  const router = new Router();
  registerHealthRoutes(router, deps);
  registerRecordsRoutes(router, deps);
  registerReportsRoutes(router, deps);
  registerCategoriesRoutes(router, deps);
  registerMetricsRoutes(router, deps);
  registerWebhooksRoutes(router, deps);
  registerEventsRoutes(router, deps);
  registerDocsRoutes(router, deps);
  registerDashboardRoutes(router, deps);
  return router;
}

/** What the routes are built from: the app's dependencies, its own metrics and the records service. */
export function createRouteDeps(deps: AppDeps): RouteDeps {
  const metrics = createApiMetrics(deps.queue);
  const records = createRecordsService({
    db: deps.db,
    queue: deps.queue,
    logger: deps.logger,
    onCreated: (n) => metrics.recordsCreated.inc(n),
    shutdown: deps.shutdown,
  });
  // deliveries written with API changes (creation, retry) are enqueued from here; workers send them
  const webhookQueue = createWebhookQueue(deps.redis, deps.config.queuePrefix);
  relayOutbox(deps.db, webhookQueue, deps.redis, deps.config.queuePrefix, deps.logger);
  const webhooks = createWebhooksService({ ...deps, queue: webhookQueue });
  const events = createEventsHub({
    db: deps.db,
    redis: deps.redis,
    prefix: deps.config.queuePrefix,
    settings: deps.config.events,
    logger: deps.logger,
    shutdown: deps.shutdown,
  });
  return { ...deps, metrics, records, webhooks, events };
}

/** Builds the Koa app from its dependencies; listening is the entry file's job. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  // errors are answered and logged by errorHandler; Koa's default would print to stderr
  app.silent = true;

  const { config, logger } = deps;
  const routeDeps = createRouteDeps(deps);
  // outermost, so it times everything and sees the status the client gets
  app.use(httpMetrics(routeDeps.metrics));
  app.use(securityHeaders());
  app.use(requestId());
  // before the log and the limits, which all name the client by this address
  app.use(clientAddress(config.trustProxy));
  app.use(requestLog(logger));
  app.use(errorHandler(logger));
  // who may write, and how often, is settled before a body is read
  app.use(
    apiKeyAuth(config.apiKeys, logger, {
      protectedPrefixes: ['/admin', '/webhooks'],
      failedKeyLimit: { redis: deps.redis, perMinute: config.authFailuresPerMinute, keyPrefix: config.queuePrefix },
    }),
  );
  if (config.rateLimitPerMinute !== null) {
    app.use(
      rateLimit({ redis: deps.redis, perMinute: config.rateLimitPerMinute, keyPrefix: config.queuePrefix, logger }),
    );
  }
  app.use(jsonBody(config.bodyLimit));
  app.use(queueBoard(deps.queue, config));
  const router = createRouter(routeDeps);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
