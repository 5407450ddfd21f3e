import Router from '@koa/router';
import Koa from 'koa';
import { errorHandler } from './middleware/error-handler.js';
import { jsonBody } from './middleware/json-body.js';
import { requestId } from './middleware/request-id.js';
import { requestLog } from './middleware/request-log.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerRecordsRoutes } from './routes/records.js';
import { registerReportsRoutes } from './routes/reports.js';
import type { AppDeps } from './deps.js';

export type { AppDeps } from './deps.js';

/** Builds the Koa app from its dependencies; listening is the entry file's job. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  // errors are answered and logged by errorHandler; Koa's default would print to stderr
  app.silent = true;

  app.use(requestId());
  app.use(requestLog(deps.logger));
  app.use(errorHandler(deps.logger));
  app.use(jsonBody(deps.config.bodyLimit));
  const router = new Router();
  registerHealthRoutes(router, deps);
  registerRecordsRoutes(router, deps);
  registerReportsRoutes(router, deps);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
