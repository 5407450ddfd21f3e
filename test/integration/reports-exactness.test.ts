import { expect } from 'chai';
import fc from 'fast-check';
import type { Knex } from 'knex';
import {
  BUCKET_MS,
  RECORD_STATUSES,
  rebuildReportCounts,
  type ListPosition,
  type RecordFilters,
  type RecordStatus,
  type SeriesBucket,
  type SortField,
  type TransitionInput,
} from '../../shared/index.js';
import { LATENCY_BINS, latencyBin, latencyOfBin } from '../../shared/db/latency-histogram.js';
import { atTime } from '../helpers/clock.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// a Monday 00:00 UTC: the data crosses hour and day boundaries from here
const T0 = Date.UTC(2026, 0, 5);

// sometimes more categories than a listing page reads one value at a time
const CATEGORIES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] as const;
const SOURCES = ['x', 'y'] as const;

type Op =
  | { kind: 'insert'; dt: number; records: Array<{ category: string; source: string }> }
  | { kind: 'finish'; dt: number; picks: Array<{ pick: number; to: 'processed' | 'failed'; stale: boolean }> }
  | { kind: 'retry'; dt: number; pick: number };

// time passing before each operation: mostly seconds and minutes, sometimes hours or days
const dt = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 5_000 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 20 * 60_000 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 3 * HOUR }), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 2 * DAY }), weight: 1 },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    dt,
    records: fc.array(
      fc.record({
        category: fc.constantFrom(...CATEGORIES.slice(0, 3), ...CATEGORIES),
        source: fc.constantFrom(...SOURCES),
      }),
      {
        minLength: 1,
        maxLength: 5,
      },
    ),
  }),
  fc.record({
    kind: fc.constant('finish' as const),
    dt,
    picks: fc.array(
      fc.record({
        pick: fc.nat(),
        to: fc.constantFrom('processed' as const, 'failed' as const),
        stale: fc.boolean().map((b) => b && Math.random() < 0.3),
      }),
      { minLength: 1, maxLength: 8 },
    ),
  }),
  fc.record({ kind: fc.constant('retry' as const), dt, pick: fc.nat() }),
);

// a range end: anywhere, or within 45 minutes of a record's created_at (where the
// half hours read from the records themselves make a difference)
type Bound = { anywhere: number } | { near: number; offset: number };
const bound: fc.Arbitrary<Bound> = fc.oneof(
  fc.record({ anywhere: fc.integer({ min: T0 - DAY, max: T0 + 8 * DAY }) }),
  fc.record({ near: fc.nat(), offset: fc.integer({ min: -45 * 60_000, max: 45 * 60_000 }) }),
);

const filtersArb: fc.Arbitrary<FilterSpec> = fc.record(
  {
    status: fc.constantFrom(...RECORD_STATUSES),
    category: fc.constantFrom('a', 'b', 'c', 'nope'),
    source: fc.constantFrom(...SOURCES),
    from: bound,
    to: bound,
  },
  { requiredKeys: [] },
);

type FilterSpec = Partial<{ status: RecordStatus; category: string; source: string; from: Bound; to: Bound }>;

function resolveFilters(spec: FilterSpec, created: readonly number[]): RecordFilters {
  const at = (b: Bound | undefined) => {
    if (b === undefined) return undefined;
    if ('anywhere' in b) return b.anywhere;
    return (created.length > 0 ? created[b.near % created.length]! : T0) + b.offset;
  };
  let from = at(spec.from);
  let to = at(spec.to);
  if (from !== undefined && to !== undefined && from > to) [from, to] = [to, from];
  const f: RecordFilters = { status: spec.status, category: spec.category, source: spec.source, from, to };
  for (const key of Object.keys(f) as Array<keyof RecordFilters>) if (f[key] === undefined) delete f[key];
  return f;
}

/** Plays the operations through the repository's real write paths, the clock moving forward. */
async function play(h: Harness, ops: readonly Op[]): Promise<void> {
  const ids: string[] = [];
  let now = T0;
  for (const op of ops) {
    now += op.dt;
    if (op.kind === 'insert') {
      const out = await atTime(now, () =>
        h.db.records.insertRecords(
          op.records.map((r) => ({ input: { ...r, payload: {} }, process: true, requestId: null })),
        ),
      );
      if (!out.replayed) ids.push(...out.records.map((r) => r.id));
    } else if (ids.length > 0 && op.kind === 'finish') {
      const group: TransitionInput[] = [];
      for (const p of op.picks) {
        const id = ids[p.pick % ids.length]!;
        const [queued] = await h.db.records.findQueued([id]);
        // a stale job's outcome belongs to an earlier queueing and must match nothing
        const seq = queued!.queueSeq - (p.stale ? 1 : 0);
        group.push({ recordId: id, seq, to: p.to, attempt: 1, requestId: null, jobId: null, error: null });
      }
      await atTime(now, () => h.db.transitions.applyTransitions(group));
    } else if (ids.length > 0 && op.kind === 'retry') {
      await atTime(now, () => h.db.transitions.retry(ids[op.pick % ids.length]!, null));
    }
  }
}

function whereFilters(q: Knex.QueryBuilder, f: RecordFilters): Knex.QueryBuilder {
  if (f.status) q.where('status', f.status);
  if (f.category) q.where('category', f.category);
  if (f.source) q.where('source', f.source);
  if (f.from !== undefined) q.where('created_at', '>=', f.from);
  if (f.to !== undefined) q.where('created_at', '<', f.to);
  return q;
}

/** The summary as a plain GROUP BY over the records computes it. */
async function plainSummary(knex: Knex, f: RecordFilters) {
  const rows = (await whereFilters(
    knex('records').select('category', 'status').count({ n: '*' }).groupBy('category', 'status'),
    f,
  )) as Array<{ category: string; status: RecordStatus; n: number | string }>;
  const totals = { all: 0, pending: 0, processed: 0, failed: 0 };
  const byCategory = new Map<
    string,
    { category: string; count: number; pending: number; processed: number; failed: number }
  >();
  for (const { category, status, n } of rows) {
    const entry = byCategory.get(category) ?? { category, count: 0, pending: 0, processed: 0, failed: 0 };
    entry.count += Number(n);
    entry[status] += Number(n);
    totals.all += Number(n);
    totals[status] += Number(n);
    byCategory.set(category, entry);
  }
  const latencies = (
    (await whereFilters(
      knex('records')
        .select(knex.raw('processed_at - created_at AS ms'))
        .whereIn('status', ['processed', 'failed'])
        .whereNotNull('processed_at'),
      f,
    )) as Array<{ ms: number | string }>
  )
    .map((r) => Number(r.ms))
    .sort((a, b) => a - b);
  // nearest rank, then the value reported for the bin that exact value falls in
  const at = (p: number) =>
    latencies.length === 0 ? null : latencyOfBin(latencyBin(latencies[Math.ceil((p * latencies.length) / 100) - 1]!));
  const histogram = new Array<number>(LATENCY_BINS).fill(0);
  for (const ms of latencies) histogram[latencyBin(ms)]! += 1;
  if (f.status === 'pending') histogram.fill(0);
  return {
    summary: {
      totals,
      by_category: [...byCategory.values()].sort((a, b) => (a.category < b.category ? -1 : 1)),
      // fewer categories here than a summary lists
      category_count: byCategory.size,
      categories_omitted: 0,
      latency_ms: { p50: at(50), p95: at(95), p99: at(99) },
    },
    histogram,
  };
}

/** The series as plain GROUP BYs over the records compute it. */
async function plainSeries(
  knex: Knex,
  f: Omit<RecordFilters, 'from' | 'to'>,
  bucket: SeriesBucket,
  range: { from: number; to: number },
) {
  const size = BUCKET_MS[bucket];
  const per = async (column: string, status?: RecordStatus) => {
    const start = knex.raw(`?? - (?? % ${size})`, [column, column]);
    const q = whereFilters(knex('records').select({ t: start }).count({ n: '*' }).groupBy(start), f)
      .where(column, '>=', range.from)
      .andWhere(column, '<', range.to);
    if (status) q.where('status', status);
    const rows = (await q) as Array<{ t: number | string; n: number | string }>;
    return new Map(rows.map((r) => [Number(r.t), Number(r.n)]));
  };
  const created = await per('created_at');
  const processed = f.status && f.status !== 'processed' ? new Map() : await per('processed_at', 'processed');
  const failed = f.status && f.status !== 'failed' ? new Map() : await per('processed_at', 'failed');
  const series = [];
  for (let t = range.from; t < range.to; t += size) {
    series.push({
      t: new Date(t).toISOString(),
      created: created.get(t) ?? 0,
      processed: processed.get(t) ?? 0,
      failed: failed.get(t) ?? 0,
    });
  }
  return series;
}

/** Counter rows as comparable values: zero rows dropped, NULL bins as 0. */
async function counterSnapshot(knex: Knex): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['record_counts', 'outcome_counts']) {
    const rows = (await knex(table).select('*')) as Array<Record<string, unknown>>;
    for (const row of rows) {
      const values = Object.entries(row)
        .filter(([k]) => /^b\d+$/.test(k) || k === 'n')
        .map(([k, v]) => [k, Number(v ?? 0)] as const)
        .filter(([, v]) => v !== 0);
      if (values.length === 0) continue;
      values.sort(([a], [b]) => (a < b ? -1 : 1));
      out.push(JSON.stringify([table, row.grain, Number(row.t), row.category, row.source, row.status, values]));
    }
  }
  return out.sort();
}

const SORTS: readonly SortField[] = ['created_at', 'status', 'category', 'source'];

/** The ids of a listing as a plain SELECT … ORDER BY over the records gives them. */
async function plainOrder(knex: Knex, f: RecordFilters, sortBy: SortField, order: 'asc' | 'desc'): Promise<string[]> {
  const keys = [...(sortBy === 'created_at' ? [] : [sortBy]), 'created_at', 'id'];
  const q = knex('records')
    .select('id')
    .orderBy(keys.map((column) => ({ column, order })));
  return ((await whereFilters(q, f)) as Array<{ id: string }>).map((r) => r.id);
}

/** The first page, every page by cursor and pages at offsets: each exactly the plain order's rows. */
async function expectListing(
  h: Harness,
  f: RecordFilters,
  sortBy: SortField,
  order: 'asc' | 'desc',
  expected: readonly string[],
): Promise<void> {
  const label = `${sortBy} ${order} ${JSON.stringify(f)}`;
  const list = (after: ListPosition | null, offset: number, limit: number) =>
    h.db.records.list({ filters: f, sortBy, order, limit, offset, after });
  // 20 rows can span more values than are read one at a time
  const page = await list(null, 0, 20);
  expect(
    page.records.map((r) => r.id),
    `first page ${label}`,
  ).to.deep.equal(expected.slice(0, 20));
  const walked: string[] = [];
  for (let next: ListPosition | null = null, first = true; first || next; first = false) {
    const p = await list(next, 0, 3);
    walked.push(...p.records.map((r) => r.id));
    next = p.next;
  }
  expect(walked, `walk ${label}`).to.deep.equal(expected);
  for (const offset of new Set([1, Math.floor(expected.length / 2), expected.length - 1, expected.length])) {
    if (offset < 0) continue;
    const skipped = await list(null, offset, 4);
    expect(
      skipped.records.map((r) => r.id),
      `offset ${offset} ${label}`,
    ).to.deep.equal(expected.slice(offset, offset + 4));
    if (skipped.next) {
      // a cursor from an offset page continues right after it
      const after = await list(skipped.next, 0, 4);
      expect(
        after.records.map((r) => r.id),
        `after offset ${offset} ${label}`,
      ).to.deep.equal(expected.slice(offset + 4, offset + 8));
    }
  }
}

// what hand-written SQL can do behind the write paths' back
type Drift =
  | { kind: 'counter'; allTime: boolean; pick: number; change: 'more' | 'fewer' | 'gone' }
  | { kind: 'record'; pick: number; change: 'category' | 'status' | 'gone' };

const driftArb: fc.Arbitrary<Drift> = fc.oneof(
  fc.record({
    kind: fc.constant('counter' as const),
    allTime: fc.boolean(),
    pick: fc.nat(),
    change: fc.constantFrom('more' as const, 'fewer' as const, 'gone' as const),
  }),
  fc.record({
    kind: fc.constant('record' as const),
    pick: fc.nat(),
    change: fc.constantFrom('category' as const, 'status' as const, 'gone' as const),
  }),
);

async function drift(knex: Knex, drifts: readonly Drift[]): Promise<void> {
  const key = ['grain', 't', 'category', 'source', 'status'];
  for (const d of drifts) {
    if (d.kind === 'counter') {
      const q = knex('record_counts').select(key).orderBy(key);
      if (d.allTime) q.where('grain', 'all');
      const rows = (await q) as Array<Record<string, unknown>>;
      if (rows.length === 0) continue;
      const row = knex('record_counts').where(rows[d.pick % rows.length]!);
      if (d.change === 'gone') await row.delete();
      else await row.update({ n: knex.raw(d.change === 'more' ? 'n + 5' : 'n - 5') });
    } else {
      const ids = ((await knex('records').select('id').orderBy('id')) as Array<{ id: string }>).map((r) => r.id);
      if (ids.length === 0) continue;
      const row = knex('records').where('id', ids[d.pick % ids.length]!);
      if (d.change === 'gone') await row.delete();
      else if (d.change === 'category') await row.update({ category: 'edited' });
      else await row.update({ status: 'failed' });
    }
  }
}

describe('reports are exact: the counters against plain GROUP BY over random data', function () {
  this.timeout(180_000);
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  async function clear() {
    for (const table of ['record_transitions', 'records', 'record_counts', 'outcome_counts'])
      await h.db.knex(table).delete();
  }

  it('summary, listing total and first page, and time series match for random writes and filters', async () => {
    const runs = Number(process.env.PROPERTY_RUNS ?? 0) || (h.db.dialect === 'postgres' ? 25 : 40);
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.array(filtersArb, { minLength: 3, maxLength: 3 }),
        fc.constantFrom<SeriesBucket>('minute', 'hour', 'day'),
        fc.constantFrom<SortField>('created_at', 'status', 'category', 'source'),
        fc.constantFrom('asc' as const, 'desc' as const),
        async (ops, filterSets, bucket, sortBy, order) => {
          await clear();
          await play(h, ops);
          const { knex } = h.db;
          const created = ((await knex('records').select('created_at')) as Array<{ created_at: number | string }>).map(
            (r) => Number(r.created_at),
          );
          for (const spec of filterSets) {
            const f = resolveFilters(spec, created);
            const summary = await h.db.reports.summary(f);
            const plain = await plainSummary(knex, f);
            expect(summary, JSON.stringify(f)).to.deep.equal(plain.summary);
            // the whole histogram, not only the three percentiles read from it
            expect((await h.db.reports.tally(f)).histogram).to.deep.equal(plain.histogram);

            const expected = await plainOrder(knex, f, sortBy, order);
            const { total } = await h.db.records.list({ filters: f, sortBy, order, limit: 1, offset: 0, after: null });
            expect(total, `total ${JSON.stringify(f)}`).to.equal(expected.length);
            await expectListing(h, f, sortBy, order, expected);

            const { from, to, ...rest } = f;
            const through = to === undefined ? undefined : to - 1;
            const limited =
              bucket === 'minute' && from !== undefined ? Math.min(through ?? Infinity, from + DAY - 1) : through;
            const range = await h.db.reports.seriesRange({ ...rest, from, through: limited }, bucket);
            if (range === null) {
              // only an open range over no matching data at all has no buckets
              expect([from, limited]).to.deep.equal([undefined, undefined]);
              expect((await plainSummary(knex, rest)).summary.totals.all).to.equal(0);
              continue;
            }
            if (bucket === 'minute' && (range.to - range.from) / BUCKET_MS.minute > 3 * 1440) continue;
            const series = await h.db.reports.timeseries(rest, bucket, range);
            expect(series, `series ${bucket} ${JSON.stringify(f)}`).to.deep.equal(
              await plainSeries(knex, rest, bucket, range),
            );
            if (from === undefined && limited === undefined) {
              // an open range covers every matching record and outcome
              const all = await plainSummary(knex, rest);
              expect(series.reduce((s, p) => s + p.created, 0)).to.equal(all.summary.totals.all);
            }
          }

          // the counters kept write by write are the ones a rebuild from the records makes
          const kept = await counterSnapshot(knex);
          await rebuildReportCounts(knex);
          expect(kept).to.deep.equal(await counterSnapshot(knex));
        },
      ),
      { numRuns: runs },
    );
  });

  it('every listing is exactly a plain SELECT … ORDER BY, however far the counters have drifted', async () => {
    const runs = Number(process.env.PROPERTY_RUNS ?? 0) || (h.db.dialect === 'postgres' ? 8 : 15);
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.array(driftArb, { minLength: 1, maxLength: 6 }),
        fc.array(filtersArb, { minLength: 2, maxLength: 2 }),
        async (ops, drifts, filterSets) => {
          await clear();
          await play(h, ops);
          await drift(h.db.knex, drifts);
          const { knex } = h.db;
          const created = ((await knex('records').select('created_at')) as Array<{ created_at: number | string }>).map(
            (r) => Number(r.created_at),
          );
          for (const spec of [{}, ...filterSets]) {
            const f = resolveFilters(spec, created);
            for (const sortBy of SORTS) {
              for (const order of ['asc', 'desc'] as const) {
                await expectListing(h, f, sortBy, order, await plainOrder(knex, f, sortBy, order));
              }
            }
          }
        },
      ),
      { numRuns: runs },
    );
  });
});
