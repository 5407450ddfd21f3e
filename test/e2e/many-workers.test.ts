import { expect } from 'chai';
import { testDatabaseUrl } from '../helpers/env.js';
import { sampleBodies, startStack, type Stack } from '../helpers/stack.js';

const RECORDS = 10_000;
const WORKERS = 4;
const BATCH = 500;
const onPostgres = testDatabaseUrl()?.startsWith('postgres') ?? false;
const report = (line: string) => console.log(`      ${line}`);

/** The worker's metrics port, from its start-up log line. */
function metricsPort(output: string): number {
  const line = output.split('\n').find((l) => l.includes('"worker started"'));
  const port = line ? (JSON.parse(line) as { metrics_port?: number }).metrics_port : undefined;
  if (!port) throw new Error(`no metrics port in the worker's output:\n${output}`);
  return port;
}

async function transitionsServed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => /^workflow_transitions_total\{[^}]*outcome="processed"/.test(l));
  return Number(line?.split(' ').pop() ?? NaN);
}

/**
 * Many workers on PostgreSQL: every worker process has its own connection pool, and all
 * race for the same rows. The status guard must hold across connections.
 */
describe(`e2e: 1 API and ${WORKERS} worker processes on PostgreSQL`, function () {
  this.timeout(600_000);
  let stack: Stack | undefined;
  after(async () => {
    await stack?.stop();
  });

  const title = `processes ${RECORDS.toLocaleString('en')} records, each with exactly one terminal transition`;
  const test = onPostgres ? it : it.skip;
  test(onPostgres ? title : `${title} — skipped: needs TEST_DATABASE_URL=postgres://… (CI sets it)`, async () => {
    // small pools on purpose: 16 jobs in flight per worker share 5 connections
    stack = await startStack({ workers: WORKERS, env: { DATABASE_POOL_MAX: '5', WORKER_CONCURRENCY: '16' } });
    const s = stack;
    const started = Date.now();
    // in batches, so the queue fills at once and all 64 job slots race over the rows
    const bodies = sampleBodies(RECORDS);
    const statuses = await Promise.all(
      Array.from({ length: RECORDS / BATCH }, async (_, i) => {
        const res = await fetch(`${s.base}/records/batch?process=true`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ records: bodies.slice(i * BATCH, (i + 1) * BATCH) }),
        });
        return res.status;
      }),
    );
    const submittedMs = Date.now() - started;
    expect(statuses.filter((status) => status !== 201)).to.deep.equal([]);

    await s.waitUntilNoPending(RECORDS, 300_000);
    const totalMs = Date.now() - started;
    const counts = await s.counts();
    const duplicates = await s.duplicates();
    const [{ n }] = (await s
      .knex('record_transitions')
      .whereIn('to_status', ['processed', 'failed'])
      .count({ n: '*' })) as Array<{ n: number | string }>;
    // a worker counts a job once BullMQ has marked it completed, just after its transition committed
    const served = () => Promise.all(s.workers.map((w) => transitionsServed(metricsPort(w.output()))));
    let perWorker = await served();
    for (let i = 0; i < 50 && perWorker.reduce((a, b) => a + b, 0) < RECORDS; i++) {
      await new Promise((r) => setTimeout(r, 100));
      perWorker = await served();
    }
    report(
      `records ${RECORDS}, terminal ${counts.processed + counts.failed}, terminal transitions ${Number(n)}, ` +
        `duplicates ${duplicates}; submitted in ${(submittedMs / 1000).toFixed(1)} s, all terminal in ` +
        `${(totalMs / 1000).toFixed(1)} s (${Math.round(RECORDS / (totalMs / 1000))} records/s); ` +
        `per worker ${perWorker.join(', ')}`,
    );

    expect(counts).to.deep.equal({ all: RECORDS, pending: 0, processed: RECORDS, failed: 0 });
    expect(duplicates).to.equal(0);
    expect(Number(n)).to.equal(RECORDS);
    // each worker's own /metrics counts what it wrote; together, every record once
    expect(perWorker.reduce((a, b) => a + b, 0)).to.equal(RECORDS);
    for (const count of perWorker) expect(count).to.be.greaterThan(0);
  });
});
