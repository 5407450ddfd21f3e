/**
 * npx tsx bench/redis-memory.ts [--jobs 100000]
 *
 * What the queue costs Redis, for sizing it: used_memory (INFO memory) of an empty
 * redis-server of its own, then after `--jobs` waiting jobs added as the API adds them
 * (addBulk of 1,000, the service's job options and data), then once a worker has
 * completed them all (BullMQ keeps the last 1,000 completed, for an hour). Bytes per
 * waiting job are what a backlog costs; the rest is what the service keeps regardless.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createProcessingQueue, jobIdFor, PROCESS_JOB, QUEUE_NAME, type ProcessJobData } from '../shared/index.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '100000' } } });
const N = Number(args.jobs);

const redis = await startRedisServer();
const admin = new Redis(redis.url);
const producer = new Redis(redis.url, { maxRetriesPerRequest: null });
const consumer = new Redis(redis.url, { maxRetriesPerRequest: null });
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
try {
  const queue = createProcessingQueue(producer, {
    prefix: 'bull',
    maxAttempts: 5,
    retryBackoffMs: 1000,
  });
  await queue.waitUntilReady();
  const empty = await usedMemory();
  for (let i = 0; i < N; i += 1000) {
    const jobs: ProcessJobData[] = Array.from({ length: Math.min(1000, N - i) }, () => ({
      recordId: randomUUID(),
      seq: 1,
      requestId: randomUUID(),
    }));
    await queue.addBulk(
      jobs.map((data) => ({ name: PROCESS_JOB, data, opts: { jobId: jobIdFor(data.recordId, data.seq) } })),
    );
  }
  const waiting = await usedMemory();
  const worker = new Worker<ProcessJobData>(QUEUE_NAME, async () => 'processed', {
    connection: consumer,
    prefix: 'bull',
    concurrency: 256,
  });
  for (;;) {
    const counts = await queue.getJobCounts('waiting', 'active');
    if ((counts.waiting ?? 0) + (counts.active ?? 0) === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await worker.close();
  await queue.close();
  const drained = await usedMemory();
  const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  console.log(
    `jobs ${N}: used_memory empty ${mb(empty)}, with ${N} waiting ${mb(waiting)} ` +
      `(${Math.round((waiting - empty) / N)} B per waiting job), after all completed ${mb(drained)}`,
  );
} finally {
  for (const c of [admin, producer, consumer]) c.disconnect();
  await redis.stop();
}
