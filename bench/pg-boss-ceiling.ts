/**
 * pg-boss, a durable PostgreSQL job queue a user might pick instead, on the same database:
 * N single send() calls from `callers` concurrent callers while work() takes batches in the
 * same process, until every job is done. No HTTP: this is the queue alone.
 */
import { randomUUID } from 'node:crypto';
import knexFactory from 'knex';
import { PgBoss } from 'pg-boss';

export async function pgBossCeiling(databaseUrl: string, n: number, callers: number) {
  const schema = `pgboss_${randomUUID().replace(/-/g, '')}`;
  const boss = new PgBoss({ connectionString: databaseUrl, schema, max: 20 });
  boss.on('error', (err) => console.error('pg-boss:', err.message));
  await boss.start();
  try {
    await boss.createQueue('bench');
    let done = 0;
    let allDone!: () => void;
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    await boss.work<{ n: number }>(
      'bench',
      { batchSize: 100, localConcurrency: 2, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true },
      async (jobs) => {
        done += jobs.length;
        if (done >= n) allDone();
      },
    );
    const started = performance.now();
    let next = 0;
    const caller = async () => {
      while (next < n) {
        const i = next++;
        await boss.send('bench', { source: 'bench', category: `c${i % 8}`, payload: { priority: i % 6, n: i } });
      }
    };
    await Promise.all(Array.from({ length: callers }, caller));
    await finished;
    return { jobsPerSecond: n / ((performance.now() - started) / 1000) };
  } finally {
    await boss.stop({ graceful: false });
    const admin = knexFactory({ client: 'pg', connection: databaseUrl });
    await admin.raw('drop schema if exists ?? cascade', [schema]);
    await admin.destroy();
  }
}
