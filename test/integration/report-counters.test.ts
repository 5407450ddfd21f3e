import { expect } from 'chai';
import { createDatabase, rebuildReportCounts, type Database } from '../../shared/index.js';
import { counters, counts, plainCounts } from '../helpers/counters.js';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('report counters under concurrent writers', function () {
  this.timeout(60_000);
  let h: Harness;
  const writers: Database[] = [];
  beforeEach(async () => {
    h = await createHarness();
    // one Knex each, as separate API and worker processes have
    for (let i = 0; i < 4; i++) writers.push(createDatabase(h.config.databaseUrl));
  });
  afterEach(async () => {
    await Promise.all(writers.splice(0).map((w) => w.close()));
    await h.close();
  });

  it('stay exact, without deadlocks, while four writers insert, transition and retry into the same counter rows', async () => {
    const categories = ['a', 'b'];
    await Promise.all(
      writers.map(async (w, wi) => {
        for (let round = 0; round < 6; round++) {
          const inputs = Array.from({ length: 20 }, (_, i) => ({
            category: categories[(i + wi) % 2]!,
            source: i % 3 === 0 ? 'x' : 'y',
            payload: { round },
          }));
          const out = await w.records.insertRecords(inputs.map((input) => ({ input, process: true, requestId: null })));
          if (out.replayed) throw new Error('unexpected replay');
          // the same hot counter rows from every writer, in groups, in different record orders
          const ids = out.records.map((r) => r.id);
          if (wi % 2 === 1) ids.reverse();
          await w.transitions.applyTransitions(
            ids.map((recordId, i) => ({
              recordId,
              seq: 1,
              to: i % 4 === 0 ? 'failed' : 'processed',
              attempt: 1,
              requestId: null,
              jobId: null,
            })),
          );
          for (const [i, id] of ids.entries()) if (i % 4 === 0 && i % 8 === 0) await w.transitions.retry(id, null);
        }
      }),
    );

    const kept = await counters(h.db.knex);
    const summary = (await h.http.get('/reports/summary').expect(200)).body;
    expect(summary.totals).to.deep.equal({ all: 480, pending: 4 * 6 * 3, processed: 4 * 6 * 15, failed: 4 * 6 * 2 });
    await rebuildReportCounts(h.db.knex);
    expect(kept).to.deep.equal(await counters(h.db.knex));
  });

  it('count a group bigger than one statement: 1,000 records in 1,000 categories, then their transitions', async () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => ({ category: `c${i}`, source: `s${i % 7}`, payload: {} }));
    const out = await h.db.records.insertRecords(inputs.map((input) => ({ input, process: true, requestId: null })));
    if (out.replayed) throw new Error('unexpected replay');
    // two groups of 500 (each record in a category of its own: thousands of counter rows per group)
    const applied: boolean[] = [];
    for (const half of [out.records.slice(0, 500), out.records.slice(500)]) {
      applied.push(
        ...(await h.db.transitions.applyTransitions(
          half.map((r, i) => ({
            recordId: r.id,
            seq: 1,
            to: i % 3 === 0 ? 'failed' : 'processed',
            attempt: 1,
            requestId: null,
            jobId: null,
          })),
        )),
      );
    }
    expect(applied.every(Boolean)).to.equal(true);
    const kept = await counters(h.db.knex);
    expect(kept.filter((row) => row.startsWith('record_counts all'))).to.have.length(1000);
    await rebuildReportCounts(h.db.knex);
    expect(kept).to.deep.equal(await counters(h.db.knex));
  });

  it('a rebuild while writers insert and transition leaves every counter equal to a GROUP BY of the records', async () => {
    // enough records that a pass takes a while
    for (let i = 0; i < 10; i++) {
      const inputs = Array.from({ length: 1000 }, (_, j) => ({ category: `c${j % 5}`, source: 's', payload: {} }));
      await h.db.records.insertRecords(inputs.map((input) => ({ input, process: true, requestId: null })));
    }
    let stop = false;
    // two: in one process, SQLite writers waiting for the lock each hold one of libuv's four threads
    const writing = writers.slice(0, h.db.dialect === 'sqlite' ? 2 : 4).map(async (w, wi) => {
      let rounds = 0;
      while (!stop) {
        // a category of its own each round: counter rows that did not exist when the rebuild began
        const inputs = Array.from({ length: 5 }, (_, i) => ({
          category: i % 2 ? `w${wi}-${rounds}` : 'c0',
          source: 's',
          payload: {},
        }));
        const out = await w.records.insertRecords(inputs.map((input) => ({ input, process: true, requestId: null })));
        if (out.replayed) throw new Error('unexpected replay');
        await w.transitions.applyTransitions(
          out.records.slice(1).map((r, i) => ({
            recordId: r.id,
            seq: 1,
            to: i % 2 ? 'failed' : 'processed',
            attempt: 1,
            requestId: null,
            jobId: null,
          })),
        );
        rounds++;
      }
      return rounds;
    });
    const settled = Promise.allSettled(writing);
    try {
      for (let i = 0; i < 3; i++) await rebuildReportCounts(h.db.knex);
    } finally {
      stop = true;
    }
    const rounds = (await settled).map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)));
    expect(
      rounds.every((r) => typeof r === 'number' && r > 0),
      `writer rounds ${rounds.join(', ')}`,
    ).to.equal(true);
    expect(await counts(h.db.knex)).to.deep.equal(await plainCounts(h.db.knex));
    // and the latency bins too: what a rebuild with nothing else running makes
    const kept = await counters(h.db.knex);
    await rebuildReportCounts(h.db.knex);
    expect(kept).to.deep.equal(await counters(h.db.knex));
  });
});
