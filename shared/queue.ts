import { Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './logger.js';
import { parseRedisUrl } from './redis-url.js';

export const QUEUE_NAME = 'records';
export const PROCESS_JOB = 'process-record';

/** What travels in a job: which record, for which queueing, on whose request. */
export interface ProcessJobData {
  recordId: string;
  seq: number;
  requestId: string | null;
}

/**
 * One job id per queueing of a record: BullMQ refuses a second job with an id it
 * already holds, so a repeated enqueue (API retry, reconciler) adds nothing.
 */
export function jobIdFor(recordId: string, seq: number): string {
  return `${recordId}-${seq}`;
}

export type ConnectionRole = 'producer' | 'worker';

/**
 * Redis answers a write with READONLY when the server it holds a connection to has just
 * become a replica (a failover that did not close connections): drop the connection, so
 * the next one goes to the primary the sentinels name, and send the command again there
 * (it was refused, so it did nothing).
 */
const reconnectOnReadOnly = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

/**
 * An ioredis connection to the REDIS_URL's server, or to the primary its sentinels name,
 * that reconnects forever with a capped delay. The one way every process connects, so
 * every connection follows a failover.
 * Producers fail fast while Redis is away (the intent is in the database and the
 * reconciler enqueues it later); workers must wait, as BullMQ requires.
 */
export function createRedisConnection(url: string, role: ConnectionRole, logger: Logger): Redis {
  const target = parseRedisUrl(url);
  const common: RedisOptions = {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    retryStrategy: (times) => Math.min(times * 100, 2000),
    reconnectOnError: reconnectOnReadOnly,
  };
  const connection =
    target.mode === 'sentinel'
      ? new Redis({
          ...common,
          sentinels: target.sentinels,
          name: target.name,
          db: target.db,
          username: target.username,
          password: target.password,
          sentinelUsername: target.sentinelUsername,
          sentinelPassword: target.sentinelPassword,
          // no failoverDetector: a +switch-master arriving while the connection is asking the
          // sentinels for the primary ends it for good (ioredis 5.11; seen in the failover test).
          // A primary the sentinels demote drops its clients itself, and a write that still meets
          // a replica is answered READONLY, which reconnects (reconnectOnError above).

          // each reconnect asks the sentinels again; a primary host that vanished without a reset
          // (a container gone, a partition) must not hold that up for ioredis's default 10 s
          connectTimeout: 3000,
          sentinelCommandTimeout: 2000,
          sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
        })
      : new Redis(target.url, common);
  let reported = false;
  let primary: string | null = null;
  connection.on('error', (err: Error) => {
    // one line per outage, not one per reconnect attempt
    if (!reported) logger.warn({ err: { message: err.message } }, 'redis connection error');
    reported = true;
  });
  connection.on('ready', () => {
    const now = connectedServer(connection);
    if (target.mode === 'sentinel' && now !== primary) {
      logger.info({ primary: now, previous: primary, master_name: target.name }, 'redis primary in use');
    } else if (reported) {
      logger.info('redis connection restored');
    }
    reported = false;
    primary = now;
  });
  return connection;
}

/** host:port of the server a connection is talking to now (the primary, under Sentinel), or null while it is not. */
export function connectedServer(connection: Redis): string | null {
  const stream = connection.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  if (connection.status !== 'ready' || !stream?.remoteAddress) return null;
  const host = stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress;
  return `${host}:${stream.remotePort}`;
}

/**
 * Closes a connection without waiting on a Redis that is away: quit() lets pending commands
 * finish first, but on a connection that is not ready it waits for Redis to come back
 * (forever on the worker role's offline queue), so that one is dropped instead, as is
 * any connection still quitting when `deadline` aborts.
 */
export async function closeRedisConnection(connection: Redis, deadline?: AbortSignal): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status !== 'ready' || deadline?.aborted) {
    connection.disconnect();
    return;
  }
  const drop = () => connection.disconnect();
  deadline?.addEventListener('abort', drop, { once: true });
  try {
    await connection.quit();
  } catch {
    // it went away while quitting: nothing left to close
    connection.disconnect();
  } finally {
    deadline?.removeEventListener('abort', drop);
  }
}

/**
 * BullMQ loses jobs when Redis evicts keys, and a restart without AOF loses the ones
 * queued since the last snapshot (the reconciler queues them again, late): say so at start.
 */
export async function warnUnlessAofAndNoEviction(connection: Redis, logger: Logger): Promise<void> {
  try {
    if (connection.status !== 'ready') {
      await withTimeout(new Promise((resolve) => connection.once('ready', resolve)), 5000, 'Redis not ready');
    }
    const [, policy] = (await connection.config('GET', 'maxmemory-policy')) as [string, string];
    const [, appendonly] = (await connection.config('GET', 'appendonly')) as [string, string];
    if (policy !== 'noeviction') {
      logger.warn(
        { maxmemory_policy: policy },
        'Redis maxmemory-policy is not noeviction: jobs can be lost under memory pressure',
      );
    }
    if (appendonly !== 'yes') {
      logger.warn(
        { appendonly },
        'Redis runs without AOF (appendonly no): a Redis restart loses queued jobs until the reconciler queues them again',
      );
    }
  } catch (err) {
    // managed Redis often disables CONFIG; nothing to check then
    logger.debug({ err: { message: (err as Error).message } }, 'cannot read Redis persistence settings');
  }
}

export interface QueueSettings {
  prefix: string;
  maxAttempts: number;
  retryBackoffMs: number;
}

export function createProcessingQueue(connection: Redis, settings: QueueSettings): Queue<ProcessJobData> {
  return new Queue<ProcessJobData>(QUEUE_NAME, {
    connection,
    prefix: settings.prefix,
    defaultJobOptions: {
      attempts: settings.maxAttempts,
      backoff: { type: 'exponential', delay: settings.retryBackoffMs },
      // the database keeps the history; Redis keeps only a bounded tail for inspection
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 86_400, count: 5000 },
    },
    // the events stream is for live listeners only; cap it so Redis memory stays flat
    streams: { events: { maxLen: 1000 } },
  });
}

export interface QueueCounts {
  waiting: number;
  active: number;
  failed: number;
  delayed: number;
}

/** Adds jobs after their intent is committed. Never throws: what it cannot add, the reconciler adds later. */
export async function enqueueProcessing(
  queue: Queue<ProcessJobData>,
  jobs: readonly ProcessJobData[],
  logger: Logger,
  timeoutMs = 2000,
): Promise<boolean> {
  if (jobs.length === 0) return true;
  const add = queue.addBulk(
    jobs.map((data) => ({ name: PROCESS_JOB, data, opts: { jobId: jobIdFor(data.recordId, data.seq) } })),
  );
  try {
    await withTimeout(add, timeoutMs, 'enqueue timed out');
    return true;
  } catch (err) {
    add.catch(() => undefined);
    logger.warn({ err: { message: (err as Error).message }, count: jobs.length }, 'enqueue deferred to reconciler');
    return false;
  }
}

export async function queueCounts(queue: Queue<ProcessJobData>, timeoutMs = 1000): Promise<QueueCounts> {
  const counts = await withTimeout(queue.getJobCounts('waiting', 'active', 'failed', 'delayed'), timeoutMs, 'timeout');
  return {
    waiting: counts.waiting ?? 0,
    active: counts.active ?? 0,
    failed: counts.failed ?? 0,
    delayed: counts.delayed ?? 0,
  };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
