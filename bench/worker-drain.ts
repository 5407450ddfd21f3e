/**
 * npx tsx bench/worker-drain.ts [--records 40000] [--concurrency 16,128,256,512]
 *
 * One worker process alone, per WORKER_CONCURRENCY: the records are created with
 * ?process=true while no worker runs (1,000-record batches through the built API), then
 * one built worker is started and timed until every record is terminal. Prints records/s,
 * the worker's CPU time per record (user + system, threads included) and its RSS at the end.
 * Uses its own redis-server and temp SQLite database; `npm run build` first.
 */
import { parseArgs } from 'node:util';
import { createDatabase } from '../shared/index.js';
import { cpuMs, rssMb } from './proc-stats.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { startProcess } from '../test/helpers/processes.js';
import { freePort, startRedisServer } from '../test/helpers/redis-server.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '40000' },
    concurrency: { type: 'string', default: '16,128,256,512' },
  },
});
const N = Number(args.records);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function drain(redisUrl: string, concurrency: number): Promise<string> {
  const database = await createTestDatabase();
  const db = createDatabase(database.url);
  await db.migrate();
  const port = await freePort();
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: `drain-${concurrency}`,
    NODE_ENV: 'production',
    WORKER_CONCURRENCY: String(concurrency),
    MIGRATE_ON_START: 'false',
  };
  try {
    const api = startProcess('api', env);
    await api.waitForOutput('api listening');
    api.discardOutput();
    for (let i = 0; i < N; i += 1000) {
      const records = Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
        source: 'bench',
        category: `c${(i + k) % 8}`,
        payload: { priority: (i + k) % 6 },
      }));
      const res = await fetch(`http://127.0.0.1:${port}/records/batch?process=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ records }),
      });
      if (res.status !== 201) throw new Error(`batch: ${res.status} ${await res.text()}`);
    }
    await api.stop();

    const worker = startProcess('worker', { ...env, METRICS_PORT: String(await freePort()) });
    await worker.waitForOutput('worker started');
    worker.discardOutput();
    const pid = worker.child.pid!;
    const cpuAtStart = cpuMs(pid);
    const started = performance.now();
    for (;;) {
      const [{ n }] = (await db.knex('records').whereNot('status', 'pending').count({ n: '*' })) as Array<{
        n: number | string;
      }>;
      if (Number(n) >= N) break;
      await sleep(25);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = (cpuMs(pid) - cpuAtStart) / 1000;
    const line =
      `WORKER_CONCURRENCY=${concurrency}: ${N} records in ${seconds.toFixed(2)} s, ${Math.round(N / seconds)} records/s, ` +
      `worker CPU ${Math.round((cpuSeconds / N) * 1e6)} µs per record, RSS ${Math.round(rssMb(pid))} MB`;
    await worker.stop();
    return line;
  } finally {
    await db.close();
    await database.drop();
  }
}

const redis = await startRedisServer();
try {
  for (const c of args.concurrency!.split(',').map(Number)) console.log(await drain(redis.url, c));
} finally {
  await redis.stop();
}
