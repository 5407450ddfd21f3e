import { randomUUID } from 'node:crypto';
import bunyan from 'bunyan';
import supertest from 'supertest';
import type Koa from 'koa';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createApp, type AppDeps } from '../../api/app.js';
import { createRecordsWorker, type RecordsWorker } from '../../worker/worker.js';
import { createProcessors, type ProcessorRegistry } from '../../worker/processors/index.js';
import {
  createDatabase,
  createProcessingQueue,
  createRedisConnection,
  loadConfig,
  type Config,
  type Database,
  type Logger,
  type ProcessJobData,
  type WorkflowRecord,
} from '../../shared/index.js';
import { createTestDatabase } from './database.js';
import { redisUrl } from './env.js';

export interface LogLine {
  msg: string;
  level: number;
  [key: string]: unknown;
}

export interface Harness {
  config: Config;
  db: Database;
  /** what the app was built from, to build another app (a second API process) on the same Redis and database */
  deps: AppDeps;
  app: Koa;
  http: ReturnType<typeof supertest>;
  queue: Queue<ProcessJobData>;
  logs: LogLine[];
  logger: Logger;
  worker?: RecordsWorker;
  startWorker(processors?: ProcessorRegistry): RecordsWorker;
  /** Polls the record until it is no longer pending. */
  waitForTerminal(id: string, timeoutMs?: number): Promise<WorkflowRecord>;
  close(): Promise<void>;
}

/** Logs kept in memory so a test can assert on them. */
function memoryLogger(lines: LogLine[]): Logger {
  return bunyan.createLogger({
    name: 'test',
    streams: [{ type: 'raw', level: 'trace', stream: { write: (rec: object) => void lines.push(rec as LogLine) } }],
  });
}

export interface HarnessOptions {
  env?: Record<string, string>;
  worker?: boolean;
  processors?: ProcessorRegistry;
}

/** The API app (and optionally a worker) wired to a fresh database, a private queue prefix and the test Redis. */
export async function createHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const database = await createTestDatabase();
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl(),
    QUEUE_PREFIX: `test-${randomUUID()}`,
    RETRY_BACKOFF_MS: '10',
    WORKER_CONCURRENCY: '8',
    ...opts.env,
  });
  const logs: LogLine[] = [];
  const logger = memoryLogger(logs);
  const db = createDatabase(config.databaseUrl, { logger });
  await db.migrate();
  const connections: Redis[] = [];
  const workerDbs: Database[] = [];
  const producer = createRedisConnection(config.redisUrl, 'producer', logger);
  connections.push(producer);
  const queue = createProcessingQueue(producer, {
    prefix: config.queuePrefix,
    maxAttempts: config.maxAttempts,
    retryBackoffMs: config.retryBackoffMs,
  });
  // aborted first in close(): the app's event streams and their Redis subscriber end
  const shutdown = new AbortController();
  const deps: AppDeps = {
    shutdown: shutdown.signal,
    config,
    logger,
    db,
    queue,
    redis: producer,
    version: { version: '0.0.0-test', commit: 'test' },
  };
  const app = createApp(deps);

  const harness: Harness = {
    config,
    db,
    deps,
    app,
    http: supertest(app.callback()),
    queue,
    logs,
    logger,
    startWorker(processors?: ProcessorRegistry) {
      const connection = createRedisConnection(config.redisUrl, 'worker', logger);
      connections.push(connection);
      // its own Knex, as a separate worker process would have
      const workerDb = createDatabase(config.databaseUrl, { logger });
      workerDbs.push(workerDb);
      harness.worker = createRecordsWorker({
        config,
        logger,
        db: workerDb,
        connection,
        processors: createProcessors(config.categories, processors),
      });
      return harness.worker;
    },
    async waitForTerminal(id, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = await db.records.findById(id);
        if (record && record.status !== 'pending') return record;
        if (Date.now() > deadline)
          throw new Error(`record ${id} still ${record?.status ?? 'missing'} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      shutdown.abort();
      await harness.worker?.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
      await Promise.all([db, ...workerDbs].map((d) => d.close()));
      await database.drop();
    },
  };
  if (opts.worker) harness.startWorker(opts.processors);
  return harness;
}
