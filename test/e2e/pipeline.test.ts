import { expect } from 'chai';
import { startStack, type Stack } from '../helpers/stack.js';

describe('e2e: the real api and worker processes', function () {
  this.timeout(90_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack({ workers: 1 });
  });
  after(async () => {
    await stack?.stop();
  });

  it('takes 200 records submitted with ?process=true to a terminal state with the right summary', async () => {
    const started = Date.now();
    const bodies = Array.from({ length: 200 }, (_, i) => ({
      source: i % 2 ? 'web' : 'batch',
      category: `cat-${i % 4}`,
      // every tenth record carries a priority that cannot be read: it must fail
      payload: { priority: i % 10 === 0 ? 'n/a' : i % 6, n: i },
    }));
    const responses = await stack.submit(bodies, { concurrency: 200 });
    expect(responses.map((r) => r.status)).to.deep.equal(bodies.map(() => 201));

    let summary: { totals: Record<string, number>; by_category: Array<Record<string, number>> };
    for (;;) {
      summary = (await (await fetch(`${stack.base}/reports/summary`)).json()) as typeof summary;
      if (summary.totals.pending === 0) break;
      if (Date.now() - started > 60_000) throw new Error(`still pending: ${JSON.stringify(summary.totals)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`      200 records from submit to all terminal in ${Date.now() - started} ms`);

    expect(summary.totals).to.deep.equal({ all: 200, pending: 0, processed: 180, failed: 20 });
    expect(summary.by_category.map((c) => [c.count, c.failed])).to.deep.equal([
      [50, 10],
      [50, 0],
      [50, 10],
      [50, 0],
    ]);
    expect((await fetch(`${stack.base}/health`)).status).to.equal(200);
  });

  it('both processes exit 0 on SIGTERM', async () => {
    expect(await stack.workers[0]!.stop('SIGTERM')).to.equal(0);
    expect(await stack.api.stop('SIGTERM')).to.equal(0);
  });
});
