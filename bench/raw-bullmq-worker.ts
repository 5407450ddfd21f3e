/**
 * The end-to-end ceiling's consumer: a bare BullMQ Worker with a no-op processor
 * and the service's concurrency. Prints "done" once it has completed the expected
 * number of jobs.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [url, prefix, expected, concurrency] = process.argv.slice(2) as [string, string, string, string];
const connection = new Redis(url, { maxRetriesPerRequest: null });
let completed = 0;
const worker = new Worker('raw', async () => undefined, {
  connection,
  prefix,
  concurrency: Number(concurrency),
});
worker.on('completed', () => {
  completed += 1;
  if (completed === Number(expected)) process.stdout.write('done\n');
});
await worker.waitUntilReady();
process.stdout.write('raw worker ready\n');
