import { expect } from 'chai';
import type { Knex } from 'knex';
import { createDatabase, rebuildReportCounts, type Database } from '../../shared/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';

/**
 * What a plain GROUP BY over the records says each counter row's `n` should be: records
 * per created_at bucket × category × source × status, terminal ones per processed_at
 * bucket. As strings comparable with `counts`.
 */
async function plainCounts(knex: Knex): Promise<string[]> {
  const out: string[] = [];
  const grains: Array<[string, number | null]> = [
    ['hour', 3_600_000],
    ['day', 86_400_000],
    ['all', null],
  ];
  for (const [table, column] of [
    ['record_counts', 'created_at'],
    ['outcome_counts', 'processed_at'],
  ] as const) {
    for (const [grain, size] of grains) {
      if (table === 'outcome_counts' && size === null) continue;
      const t = size === null ? knex.raw('0') : knex.raw(`?? - (?? % ${size})`, [column, column]);
      const q = knex('records')
        .select({ t }, 'category', 'source', 'status')
        .count({ n: '*' })
        .groupBy(size === null ? ['category', 'source', 'status'] : [t, 'category', 'source', 'status']);
      if (table === 'outcome_counts') q.whereIn('status', ['processed', 'failed']).whereNotNull('processed_at');
      for (const r of (await q) as Array<{ t: unknown; category: string; source: string; status: string; n: unknown }>)
        out.push(`${table} ${grain} ${Number(r.t)} ${r.category} ${r.source} ${r.status} n=${Number(r.n)}`);
    }
  }
  return out.sort();
}

/** `n` of every counter row that counts something, as comparable strings. */
async function counts(knex: Knex): Promise<string[]> {
  const rows = (await knex
    .select(knex.raw("'record_counts' AS tab"), 'grain', 't', 'category', 'source', 'status', 'n')
    .from('record_counts')
    .where('n', '<>', 0)
    .unionAll((u) =>
      u
        .select(knex.raw("'outcome_counts' AS tab"), 'grain', 't', 'category', 'source', 'status', 'n')
        .from('outcome_counts')
        .where('n', '<>', 0),
    )) as Array<Record<string, unknown>>;
  return rows
    .map(
      (r) =>
        `${String(r.tab)} ${String(r.grain)} ${Number(r.t)} ${String(r.category)} ${String(r.source)} ${String(r.status)} n=${Number(r.n)}`,
    )
    .sort();
}

/** Every counter row with something in it, as comparable strings. */
async function counters(knex: Knex): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['record_counts', 'outcome_counts']) {
    for (const row of (await knex(table).select('*')) as Array<Record<string, unknown>>) {
      const values = Object.entries(row)
        .filter(([k, v]) => (k === 'n' || /^b\d+$/.test(k)) && Number(v ?? 0) !== 0)
        .map(([k, v]) => `${k}=${Number(v)}`)
        .sort();
      if (values.length > 0)
        out.push(
          `${table} ${String(row.grain)} ${Number(row.t)} ${String(row.category)} ${String(row.source)} ${String(row.status)} ${values.join(' ')}`,
        );
    }
  }
  return out.sort();
}

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
