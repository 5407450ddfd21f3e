import {
  closeInOrder,
  closeRedisConnection,
  createDatabase,
  createLogger,
  createRedisConnection,
  exitOnSignals,
  loadConfigOrExit,
} from '../shared/index.js';
import { startMetricsServer } from './metrics-server.js';
import { createProcessors } from './processors/index.js';
import { createRecordsWorker } from './worker.js';

const config = loadConfigOrExit();
const logger = createLogger('worker', config.logLevel);
// every module processor is imported before the first job: a broken one stops the worker here
const processors = createProcessors(config.categories);
await processors.load().catch((err: Error) => {
  process.stderr.write(`configuration error: invalid CATEGORIES_FILE ${err.message}\n`);
  process.exit(1);
});
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax, logger });
const connection = createRedisConnection(config.redisUrl, 'worker', logger);
const records = createRecordsWorker({ config, logger, db, connection, processors });
const metricsStarting = startMetricsServer(
  records.metrics.registry,
  { host: config.host, port: config.metricsPort },
  logger,
);

exitOnSignals(
  closeInOrder(
    [
      { name: 'worker', run: (deadline) => records.close(deadline) },
      { name: 'metrics', run: async () => (await metricsStarting).close() },
      { name: 'redis', run: (deadline) => closeRedisConnection(connection, deadline) },
      { name: 'database', run: () => db.close() },
    ],
    logger,
    { timeoutMs: config.shutdownTimeoutMs },
  ),
  logger,
);
const metricsServer = await metricsStarting;
logger.info(
  { concurrency: config.workerConcurrency, queue_prefix: config.queuePrefix, metrics_port: metricsServer.port },
  'worker started',
);
