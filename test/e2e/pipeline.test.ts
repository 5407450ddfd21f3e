import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { redisUrl } from '../helpers/env.js';
import { startProcess, type ServiceProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';

describe('e2e: the real api and worker processes', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let api: ServiceProcess;
  let worker: ServiceProcess;
  let base: string;

  before(async () => {
    database = await createTestDatabase();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl(),
      QUEUE_PREFIX: `e2e-${randomUUID()}`,
    };
    api = startProcess('api', env);
    await api.waitForOutput('api listening');
    worker = startProcess('worker', { ...env, METRICS_PORT: String(await freePort()) });
    await worker.waitForOutput('worker started');
  });

  after(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
    await database?.drop();
  });

  it('takes 200 records submitted with ?process=true to a terminal state with the right summary', async () => {
    const started = Date.now();
    const bodies = Array.from({ length: 200 }, (_, i) => ({
      source: i % 2 ? 'web' : 'batch',
      category: `cat-${i % 4}`,
      // every tenth record carries a priority that cannot be read: it must fail
      payload: { priority: i % 10 === 0 ? 'n/a' : i % 6, n: i },
    }));
    const responses = await Promise.all(
      bodies.map((body) =>
        fetch(`${base}/records?process=true`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }),
      ),
    );
    expect(responses.map((r) => r.status)).to.deep.equal(bodies.map(() => 201));

    let summary: { totals: Record<string, number>; by_category: Array<Record<string, unknown>> };
    for (;;) {
      summary = (await (await fetch(`${base}/reports/summary`)).json()) as typeof summary;
      if (summary.totals.pending === 0) break;
      if (Date.now() - started > 60_000) throw new Error(`still pending: ${JSON.stringify(summary.totals)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const elapsed = Date.now() - started;
    console.log(`      200 records from submit to all terminal in ${elapsed} ms`);

    expect(summary.totals).to.deep.equal({ all: 200, pending: 0, processed: 180, failed: 20 });
    expect(summary.by_category).to.have.length(4);
    for (const entry of summary.by_category) expect(entry.count).to.equal(50);
    const failedIds = summary.by_category.reduce((n, c) => n + Number(c.failed), 0);
    expect(failedIds).to.equal(20);

    const health = await fetch(`${base}/health`);
    expect(health.status).to.equal(200);
  });

  it('both processes exit 0 on SIGTERM', async () => {
    expect(await worker.stop('SIGTERM')).to.equal(0);
    expect(await api.stop('SIGTERM')).to.equal(0);
  });
});
