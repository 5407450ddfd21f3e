import http from 'node:http';
import {
  closeInOrder,
  createDatabase,
  createLogger,
  createProcessingQueue,
  createRedisConnection,
  exitOnSignals,
  loadConfigOrExit,
  readVersionInfo,
  warnUnlessAofAndNoEviction,
} from '../shared/index.js';
import { createApp } from './app.js';

const config = loadConfigOrExit();
const logger = createLogger('api', config.logLevel);
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax });

if (config.migrateOnStart) {
  const ran = await db.migrate();
  if (ran.length > 0) logger.info({ migrations: ran }, 'migrations applied');
}

const redis = createRedisConnection(config.redisUrl, 'producer', logger);
const queue = createProcessingQueue(redis, {
  prefix: config.queuePrefix,
  maxAttempts: config.maxAttempts,
  retryBackoffMs: config.retryBackoffMs,
});
void warnUnlessAofAndNoEviction(redis, logger);
const shutdown = new AbortController();
const app = createApp({
  config,
  logger,
  db,
  queue,
  redis,
  version: readVersionInfo(config.gitCommit),
  shutdown: shutdown.signal,
});
const server = http.createServer(app.callback());

const close = closeInOrder(
  [
    // clients waiting on `Prefer: wait` get their 202 now, not at the end of their wait
    { name: 'waits', run: () => shutdown.abort() },
    {
      name: 'http',
      run: () =>
        new Promise<void>((resolve) => {
          // stop accepting; in-flight requests finish, idle keep-alive sockets are dropped
          server.close(() => resolve());
          server.closeIdleConnections();
        }),
    },
    { name: 'queue', run: () => queue.close() },
    { name: 'redis', run: () => redis.quit() },
    { name: 'database', run: () => db.close() },
  ],
  logger,
);
exitOnSignals(close, logger);

server.listen(config.port, config.host, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ host: config.host, port }, 'api listening');
});
