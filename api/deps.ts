import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config, Database, Logger, ProcessJobData, VersionInfo } from '../shared/index.js';
import type { ApiMetrics } from './metrics/index.js';
import type { EventsHub } from './events-hub.js';
import type { RecordsService } from './services/records-service.js';
import type { WebhooksService } from './services/webhooks-service.js';

/** What the app is built from: the entry file passes real ones, tests their own. */
export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Database;
  queue: Queue<ProcessJobData>;
  /** the producer connection (the queue's own); the rate limiter counts here */
  redis: Redis;
  version: VersionInfo;
  /** aborted when the process starts to shut down: waits end at once, timers stop */
  shutdown?: AbortSignal;
}

/** What the routes get: the app's dependencies and what each app makes for itself. */
export interface RouteDeps extends AppDeps {
  /** this app's own metrics registry (tests build several apps in one process) */
  metrics: ApiMetrics;
  records: RecordsService;
  webhooks: WebhooksService;
  /** GET /events of this process */
  events: EventsHub;
}
