import http from 'node:http';
import {
  closeInOrder,
  closeRedisConnection,
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
const db = createDatabase(config.databaseUrl, { poolMax: config.databasePoolMax, logger });

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
const handle = app.callback();
// once shutdown begins, every response closes its connection, so keep-alive clients do not
// hold server.close() open until their idle timeout: those not yet started say so in a
// header, and a connection is dropped as soon as its response ends
const unanswered = new Set<http.ServerResponse>();
const server = http.createServer((req, res) => {
  if (shutdown.signal.aborted) res.setHeader('connection', 'close');
  unanswered.add(res);
  res.once('close', () => {
    unanswered.delete(res);
    if (shutdown.signal.aborted) server.closeIdleConnections();
  });
  void handle(req, res);
});

const close = closeInOrder(
  [
    {
      // clients waiting on `Prefer: wait` get their 202 now, not at the end of their wait
      name: 'waits',
      run: () => {
        for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
        shutdown.abort();
      },
    },
    {
      name: 'http',
      run: (deadline) =>
        new Promise<void>((resolve) => {
          // stop accepting; in-flight requests finish, idle keep-alive sockets are dropped
          server.close(() => resolve());
          server.closeIdleConnections();
          deadline.addEventListener('abort', () => server.closeAllConnections(), { once: true });
        }),
    },
    { name: 'queue', run: () => queue.close() },
    { name: 'redis', run: (deadline) => closeRedisConnection(redis, deadline) },
    { name: 'database', run: () => db.close() },
  ],
  logger,
  { timeoutMs: config.shutdownTimeoutMs },
);
exitOnSignals(close, logger);

server.listen(config.port, config.host, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ host: config.host, port }, 'api listening');
});
