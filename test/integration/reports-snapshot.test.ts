import { expect } from 'chai';
import { createDatabase, RECORD_STATUSES, type Database, type RecordFilters } from '../../shared/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const CATEGORIES = ['a', 'b', 'c', 'd'];

/** Inserts records, then moves them to processed or failed, round after round, until stopped. */
async function writeUntil(w: Database, stopped: () => boolean, offset: number): Promise<number> {
  let rounds = 0;
  while (!stopped()) {
    const out = await w.records.insertRecords(
      Array.from({ length: 4 }, (_, i) => ({
        input: { category: CATEGORIES[(rounds + i + offset) % CATEGORIES.length]!, source: 's', payload: {} },
        process: true,
        requestId: null,
      })),
    );
    if (out.replayed) throw new Error('unexpected replay');
    await w.transitions.applyTransitions(
      out.records.map((r, i) => ({
        recordId: r.id,
        seq: 1,
        to: i % 3 === 0 ? 'failed' : 'processed',
        attempt: 1,
        requestId: null,
        jobId: null,
        error: i % 3 === 0 ? 'boom' : null,
      })),
    );
    rounds++;
  }
  return rounds;
}

describe('each report reads one snapshot', function () {
  this.timeout(120_000);
  let h: Harness;
  const writers: Database[] = [];
  beforeEach(async () => {
    h = await createHarness();
    // other processes' connections, as API and worker processes have
    for (let i = 0; i < 2; i++) writers.push(createDatabase(h.config.databaseUrl));
  });
  afterEach(async () => {
    await Promise.all(writers.splice(0).map((w) => w.close()));
    await h.close();
  });

  it('summary, time series and listing agree with themselves while records are written and transitioned', async () => {
    let stop = false;
    const writing = writers.map((w, i) => writeUntil(w, () => stop, i));
    const problems: string[] = [];
    const reads = Number(process.env.SNAPSHOT_READS ?? 0) || 150;
    try {
      for (let n = 0; n < reads && problems.length === 0; n++) {
        const filters: RecordFilters = n % 2 === 0 ? {} : { from: Date.now() - 3_600_000 };
        const t = await h.db.reports.tally(filters);
        const sum = (key: 'count' | 'pending' | 'processed' | 'failed') => t.byCategory.reduce((s, c) => s + c[key], 0);
        const histogram = t.histogram.reduce((s, x) => s + x, 0);
        const seen = {
          all: [t.totals.all, sum('count'), t.totals.pending + t.totals.processed + t.totals.failed],
          ...Object.fromEntries(RECORD_STATUSES.map((s) => [s, [t.totals[s], sum(s)]])),
          terminal: [t.totals.processed + t.totals.failed, histogram],
        };
        for (const [what, values] of Object.entries(seen)) {
          if (new Set(values).size > 1)
            problems.push(`summary ${JSON.stringify(filters)} ${what}: ${values.join(' ≠ ')}`);
        }

        // over an open range the series adds up to the summary's totals
        const series = (await h.http.get('/reports/timeseries?bucket=day').expect(200)).body.series as Array<{
          created: number;
          processed: number;
          failed: number;
        }>;
        const summary = (await h.http.get('/reports/summary').expect(200)).body;
        const total = (key: 'created' | 'processed' | 'failed') => series.reduce((s, p) => s + p[key], 0);
        if (total('processed') + total('failed') > total('created'))
          problems.push(`series: ${total('processed')} processed + ${total('failed')} failed > ${total('created')}`);
        if (summary.by_category.reduce((s: number, c: { count: number }) => s + c.count, 0) !== summary.totals.all)
          problems.push(`GET /reports/summary: by_category does not add up to ${summary.totals.all}`);

        // only the records between their insert and their transition are pending: one page holds them all
        const page = (await h.http.get('/records?status=pending&limit=200').expect(200)).body;
        if (page.total <= 200 && page.count !== page.total)
          problems.push(`listing: ${page.count} pending records on the page, total ${page.total}`);
      }
    } finally {
      stop = true;
    }
    const rounds = await Promise.all(writing);
    expect(problems, `${problems.length} inconsistent reads`).to.deep.equal([]);
    // the reads did run beside the writes
    expect(
      rounds.every((r) => r > 5),
      `writer rounds ${rounds.join(', ')}`,
    ).to.equal(true);
  });
});
