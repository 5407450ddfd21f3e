import {
  closeInOrder,
  createDatabase,
  createLogger,
  createRedisConnection,
  exitOnSignals,
  loadConfigOrExit,
} from '../shared/index.js';
import { createRecordsWorker } from './worker.js';

const config = loadConfigOrExit();
const logger = createLogger('worker', config.logLevel);
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax });
const connection = createRedisConnection(config.redisUrl, 'worker', logger);
const records = createRecordsWorker({ config, logger, db, connection });

exitOnSignals(
  closeInOrder(
    [
      { name: 'worker', run: () => records.close() },
      { name: 'redis', run: () => connection.quit() },
      { name: 'database', run: () => db.close() },
    ],
    logger,
  ),
  logger,
);
logger.info({ concurrency: config.workerConcurrency, queue_prefix: config.queuePrefix }, 'worker started');
