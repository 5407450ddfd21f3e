import type { Queue } from 'bullmq';
import type { Config, Database, Logger, ProcessJobData, VersionInfo } from '../shared/index.js';

/** What the app is built from: the entry file passes real ones, tests their own. */
export interface AppDeps {
  config: Config;
  logger: Logger;
  db: Database;
  queue: Queue<ProcessJobData>;
  version: VersionInfo;
}
