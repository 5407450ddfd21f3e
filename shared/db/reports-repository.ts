import type { Knex } from 'knex';
import { isTerminal, RECORD_STATUSES, TERMINAL_STATUSES, type RecordStatus } from '../state-machine.js';
import {
  emptyHistogram,
  latencyBin,
  latencyPercentiles,
  type LatencyHistogram,
  type LatencyPercentiles,
} from './latency-histogram.js';
import { coverRange, type RangePiece } from './range-cover.js';
import { readSnapshot } from './read-snapshot.js';
import { BIN_COLUMNS, DAY_MS, HOUR_MS } from './report-counters.js';

/** Which records a report or a listing counts; the created_at range is [from, to). */
export interface RecordFilters {
  status?: RecordStatus;
  category?: string;
  source?: string;
  from?: number;
  to?: number;
}

export interface StatusCounts {
  all: number;
  pending: number;
  processed: number;
  failed: number;
}

export interface Summary {
  totals: StatusCounts;
  by_category: Array<{ category: string; count: number } & Omit<StatusCounts, 'all'>>;
  /** categories with a matching record; by_category lists the first MAX_SUMMARY_CATEGORIES of them */
  category_count: number;
  /** category_count minus the entries of by_category */
  categories_omitted: number;
  latency_ms: LatencyPercentiles;
}

export type SeriesBucket = 'minute' | 'hour' | 'day';

export const BUCKET_MS: Record<SeriesBucket, number> = { minute: 60_000, hour: HOUR_MS, day: DAY_MS };

export interface SeriesPoint {
  t: string;
  created: number;
  processed: number;
  failed: number;
}

/** Latency percentiles of the records created in one bucket that are now terminal. */
export interface LatencyPoint extends LatencyPercentiles {
  t: string;
  /** terminal records created in the bucket */
  count: number;
}

type Builder = Knex.QueryBuilder;

function whereRecordFilters(q: Builder, f: Pick<RecordFilters, 'status' | 'category' | 'source'>): Builder {
  if (f.status) q.where('status', f.status);
  if (f.category) q.where('category', f.category);
  if (f.source) q.where('source', f.source);
  return q;
}

/** Counter rows of the given grain parts (all of one sign). */
function whereCounterPieces(q: Builder, pieces: readonly RangePiece[]): Builder {
  return q.where((any) => {
    for (const p of pieces) {
      any.orWhere((one) => {
        one.where('grain', p.grain);
        if (Number.isFinite(p.from)) one.andWhere('t', '>=', p.from);
        if (Number.isFinite(p.to)) one.andWhere('t', '<', p.to);
      });
    }
  });
}

const bySign = (pieces: readonly RangePiece[], sign: 1 | -1) => pieces.filter((p) => p.sign === sign);

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

/** The most categories one summary lists in `by_category`; the rest are counted in `category_count`. */
export const MAX_SUMMARY_CATEGORIES = 1000;

export interface Tally {
  totals: StatusCounts;
  /** the first `maxCategories` categories with a matching record, by category (byte order) */
  byCategory: Summary['by_category'];
  /** how many categories have a matching record */
  categoryCount: number;
  /** of the terminal records matched (empty when only pending records can match) */
  histogram: LatencyHistogram;
}

/**
 * The reports, read from the counters (see report-counters.ts): a date range is counted as
 * whole days and hours from the counters plus at most half an hour of records at each end,
 * so a report's cost depends on the number of categories, sources and days in the range,
 * not on the number of records. Each report reads one snapshot (readSnapshot), so its
 * parts agree with each other whatever is written meanwhile.
 */
export class ReportsRepository {
  constructor(private readonly knex: Knex) {}

  /** Runs `read` with this repository bound to one read snapshot. */
  async inSnapshot<T>(read: (reports: ReportsRepository) => Promise<T>): Promise<T> {
    if (this.knex.isTransaction) return read(this);
    return readSnapshot(this.knex, (trx) => read(new ReportsRepository(trx)));
  }

  /**
   * The matching records counted per `by` columns, as signed parts to add up: the counter
   * rows of whole days and hours, and the records at the range's ends (see coverRange).
   */
  private signedCounts(f: RecordFilters, by: ReadonlyArray<'category' | 'status'>): Builder {
    const parts: Builder[] = [];
    const group = (q: Builder) => (by.length > 0 ? q.select(...by).groupBy([...by]) : q);
    const pieces = coverRange(f.from, f.to);
    for (const sign of [1, -1] as const) {
      const counted = bySign(pieces, sign).filter((p) => p.grain !== 'raw');
      if (counted.length > 0) {
        const q = group(this.knex('record_counts').select(this.knex.raw(`SUM(n) * ${sign} AS n`)));
        parts.push(whereRecordFilters(whereCounterPieces(q, counted), f));
      }
      for (const p of bySign(pieces, sign).filter((x) => x.grain === 'raw')) {
        const q = group(this.knex('records').select(this.knex.raw(`COUNT(*) * ${sign} AS n`)))
          .where('created_at', '>=', p.from)
          .andWhere('created_at', '<', p.to);
        parts.push(whereRecordFilters(q, f));
      }
    }
    // an empty range: no part, no row
    if (parts.length === 0) return group(this.knex('record_counts').select(this.knex.raw('0 AS n'))).whereRaw('1 = 0');
    // each part as a subquery: SQLite refuses parenthesised members of a UNION, and Knex
    // would write a first member's GROUP BY after the UNION
    const [first, ...rest] = parts.map((q, i) => this.knex.select('*').from(q.as(`p${i}`)));
    return rest.length > 0 ? first!.unionAll(rest) : first!;
  }

  /** How many records match (the listing's `total`), in one statement. */
  async count(f: RecordFilters): Promise<number> {
    const row = (await this.knex.from(this.signedCounts(f, []).as('parts')).sum({ n: 'n' }).first()) as
      { n: unknown } | undefined;
    return num(row?.n);
  }

  /** The matching records counted by status and per category, and the latency histogram of the terminal ones. */
  async tally(f: RecordFilters, maxCategories = MAX_SUMMARY_CATEGORIES): Promise<Tally> {
    return this.inSnapshot((reports) => reports.readTally(f, maxCategories));
  }

  private async readTally(f: RecordFilters, maxCategories: number): Promise<Tally> {
    const totals: StatusCounts = { all: 0, pending: 0, processed: 0, failed: 0 };
    const byStatus = (await this.knex
      .from(this.signedCounts(f, ['status']).as('parts'))
      .select('status')
      .sum({ n: 'n' })
      .groupBy('status')) as Array<{ status: string; n: unknown }>;
    for (const { status, n } of byStatus) {
      if (!(RECORD_STATUSES as readonly string[]).includes(status)) continue;
      totals[status as RecordStatus] += num(n);
      totals.all += num(n);
    }

    const perStatus = (status: RecordStatus) =>
      this.knex.raw('SUM(CASE WHEN status = ? THEN n ELSE 0 END) AS ??', [status, status]);
    // byte order on PostgreSQL too, whatever the database's locale
    const byCategoryOrder = this.knex.client.config.client === 'pg' ? 'category COLLATE "C"' : 'category';
    const categories = (await this.knex
      .from(this.signedCounts(f, ['category', 'status']).as('parts'))
      .select('category', this.knex.raw('SUM(n) AS count'), ...RECORD_STATUSES.map(perStatus))
      .select(this.knex.raw('COUNT(*) OVER () AS category_count'))
      .groupBy('category')
      .havingRaw('SUM(n) > 0')
      .orderByRaw(byCategoryOrder)
      .limit(maxCategories)) as Array<Record<string, unknown> & { category: string }>;
    const byCategory = categories.map((row) => ({
      category: row.category,
      count: num(row.count),
      pending: num(row.pending),
      processed: num(row.processed),
      failed: num(row.failed),
    }));
    const categoryCount = categories.length > 0 ? num(categories[0]!.category_count) : 0;
    return { totals, byCategory, categoryCount, histogram: await this.histogram(f) };
  }

  /** The latency histogram of the matching terminal records (empty when only pending records can match). */
  private async histogram(f: RecordFilters): Promise<LatencyHistogram> {
    const histogram = emptyHistogram();
    if (f.status !== undefined && !isTerminal(f.status)) return histogram;
    const pieces = coverRange(f.from, f.to);
    for (const sign of [1, -1] as const) {
      const counted = bySign(pieces, sign).filter((p) => p.grain !== 'raw');
      if (counted.length > 0) {
        const sums = BIN_COLUMNS.map((c) => this.knex.raw('SUM(??) AS ??', [c, c]));
        const h = whereCounterPieces(this.knex('record_counts').select(sums), counted).whereIn(
          'status',
          TERMINAL_STATUSES,
        );
        const [row] = (await whereRecordFilters(h, f)) as Array<Record<string, unknown>>;
        BIN_COLUMNS.forEach((c, bin) => (histogram[bin]! += sign * num(row?.[c])));
      }
      for (const p of bySign(pieces, sign).filter((x) => x.grain === 'raw')) {
        const l = this.knex('records')
          .select(this.knex.raw('processed_at - created_at AS ms'))
          .whereIn('status', TERMINAL_STATUSES)
          .whereNotNull('processed_at')
          .where('created_at', '>=', p.from)
          .andWhere('created_at', '<', p.to);
        for (const { ms } of (await whereRecordFilters(l, f)) as Array<{ ms: number | string }>) {
          histogram[latencyBin(Number(ms))]! += sign;
        }
      }
    }
    return histogram;
  }

  /**
   * Totals by status, the first MAX_SUMMARY_CATEGORIES categories by name with how many
   * match in all, and the latency percentiles, from one snapshot.
   */
  async summary(f: RecordFilters): Promise<Summary> {
    const { totals, byCategory, categoryCount, histogram } = await this.tally(f);
    return {
      totals,
      by_category: byCategory,
      category_count: categoryCount,
      categories_omitted: categoryCount - byCategory.length,
      latency_ms: latencyPercentiles(histogram),
    };
  }

  /**
   * The buckets a series covers, [from, to): those holding `from` through `to` (inclusive
   * ms), an open end taken from the first or last hour holding a matching record or
   * outcome; null when there is nothing to show.
   */
  async seriesRange(
    f: Omit<RecordFilters, 'from' | 'to'> & { from?: number; through?: number },
    bucket: SeriesBucket,
  ): Promise<{ from: number; to: number } | null> {
    return this.inSnapshot((reports) => reports.readSeriesRange(f, bucket));
  }

  private async readSeriesRange(
    f: Omit<RecordFilters, 'from' | 'to'> & { from?: number; through?: number },
    bucket: SeriesBucket,
  ): Promise<{ from: number; to: number } | null> {
    const size = BUCKET_MS[bucket];
    const floor = (ms: number) => Math.floor(ms / size) * size;
    let first = f.from;
    let last = f.through;
    if (first === undefined || last === undefined) {
      const extent = await this.dataExtent(f);
      first ??= extent ? Math.min(extent.first, last ?? Infinity) : last;
      last ??= extent ? Math.max(extent.last, first ?? -Infinity) : first;
    }
    if (first === undefined || last === undefined) return null;
    return { from: floor(first), to: floor(last) + size };
  }

  /** The first and the last ms of the hours holding a matching record or outcome. */
  private async dataExtent(f: Omit<RecordFilters, 'from' | 'to'>): Promise<{ first: number; last: number } | null> {
    const ends: number[] = [];
    const tables: Array<'record_counts' | 'outcome_counts'> =
      f.status !== undefined && !isTerminal(f.status) ? ['record_counts'] : ['record_counts', 'outcome_counts'];
    for (const table of tables) {
      for (const order of ['asc', 'desc'] as const) {
        const q = this.knex(table).select('t').where('grain', 'hour').andWhere('n', '>', 0).orderBy('t', order).first();
        const row = (await whereRecordFilters(q, f)) as { t: number | string } | undefined;
        if (row) ends.push(Number(row.t));
      }
    }
    if (ends.length === 0) return null;
    return { first: Math.min(...ends), last: Math.max(...ends) + HOUR_MS - 1 };
  }

  /**
   * Per bucket in [range.from, range.to): records created then, and records that reached
   * their current terminal status then (by `processed_at`). Hours and days are read from
   * the counters, minutes from the records (the caller bounds how many).
   */
  async timeseries(
    f: Omit<RecordFilters, 'from' | 'to'>,
    bucket: SeriesBucket,
    range: { from: number; to: number },
  ): Promise<SeriesPoint[]> {
    return this.inSnapshot((reports) => reports.readTimeseries(f, bucket, range));
  }

  private async readTimeseries(
    f: Omit<RecordFilters, 'from' | 'to'>,
    bucket: SeriesBucket,
    range: { from: number; to: number },
  ): Promise<SeriesPoint[]> {
    const size = BUCKET_MS[bucket];
    const created = new Map<number, number>();
    const outcomes = { processed: new Map<number, number>(), failed: new Map<number, number>() };
    const statuses = TERMINAL_STATUSES.filter((s) => f.status === undefined || f.status === s);
    // rows of (t, status, n) from either source of outcomes, filtered like the records
    const addOutcomes = async (q: Knex.QueryBuilder) => {
      for (const r of (await whereRecordFilters(q, { ...f, status: undefined })) as Array<{
        t: unknown;
        status: (typeof TERMINAL_STATUSES)[number];
        n: unknown;
      }>) {
        outcomes[r.status].set(num(r.t), num(r.n));
      }
    };

    if (bucket === 'minute') {
      const start = (column: string) => this.knex.raw(`?? - (?? % ${size})`, [column, column]);
      const c = this.knex('records')
        .select({ t: start('created_at') })
        .count({ n: '*' })
        .where('created_at', '>=', range.from)
        .andWhere('created_at', '<', range.to)
        .groupBy(start('created_at'));
      for (const r of (await whereRecordFilters(c, f)) as Array<{ t: unknown; n: unknown }>) {
        created.set(num(r.t), num(r.n));
      }
      if (statuses.length > 0) {
        // SQLite, without statistics, would read every terminal record through the status index
        const records: Builder =
          this.knex.client.config.client === 'sqlite3'
            ? this.knex.from(this.knex.raw('?? INDEXED BY ??', ['records', 'records_processed_at_idx']))
            : this.knex('records');
        const o = records
          .select({ t: start('processed_at') }, 'status')
          .count({ n: '*' })
          .where('processed_at', '>=', range.from)
          .andWhere('processed_at', '<', range.to)
          .whereIn('status', statuses)
          .groupBy(start('processed_at'))
          .groupBy('status');
        await addOutcomes(o);
      }
    } else {
      const c = this.knex('record_counts')
        .select('t')
        .sum({ n: 'n' })
        .where('grain', bucket)
        .andWhere('t', '>=', range.from)
        .andWhere('t', '<', range.to)
        .groupBy('t');
      for (const r of (await whereRecordFilters(c, f)) as Array<{ t: unknown; n: unknown }>) {
        created.set(num(r.t), num(r.n));
      }
      if (statuses.length > 0) {
        const o = this.knex('outcome_counts')
          .select('t', 'status')
          .sum({ n: 'n' })
          .where('grain', bucket)
          .andWhere('t', '>=', range.from)
          .andWhere('t', '<', range.to)
          .whereIn('status', statuses)
          .groupBy('t', 'status');
        await addOutcomes(o);
      }
    }

    const series: SeriesPoint[] = [];
    for (let t = range.from; t < range.to; t += size) {
      series.push({
        t: new Date(t).toISOString(),
        created: created.get(t) ?? 0,
        processed: outcomes.processed.get(t) ?? 0,
        failed: outcomes.failed.get(t) ?? 0,
      });
    }
    return series;
  }
  /**
   * Per bucket in [range.from, range.to): the latency percentiles of the matching records
   * created then that are now processed or failed. Hours and days add up the counters'
   * histograms; minutes bin the records themselves (the caller bounds how many).
   */
  async latencySeries(
    f: Omit<RecordFilters, 'from' | 'to'>,
    bucket: SeriesBucket,
    range: { from: number; to: number },
  ): Promise<LatencyPoint[]> {
    const size = BUCKET_MS[bucket];
    const histograms = new Map<number, LatencyHistogram>();
    const histogramAt = (t: number) => {
      let h = histograms.get(t);
      if (!h) histograms.set(t, (h = emptyHistogram()));
      return h;
    };
    const statuses = TERMINAL_STATUSES.filter((s) => f.status === undefined || f.status === s);
    if (statuses.length > 0 && bucket === 'minute') {
      const q = this.knex('records')
        .select('created_at', this.knex.raw('processed_at - created_at AS ms'))
        .where('created_at', '>=', range.from)
        .andWhere('created_at', '<', range.to)
        .whereIn('status', statuses)
        .whereNotNull('processed_at');
      for (const r of (await whereRecordFilters(q, { ...f, status: undefined })) as Array<{
        created_at: number | string;
        ms: number | string;
      }>) {
        const created = num(r.created_at);
        histogramAt(created - (created % size))[latencyBin(num(r.ms))]! += 1;
      }
    } else if (statuses.length > 0) {
      const q = this.knex('record_counts')
        .select('t', ...BIN_COLUMNS.map((c) => this.knex.raw('SUM(??) AS ??', [c, c])))
        .where('grain', bucket)
        .andWhere('t', '>=', range.from)
        .andWhere('t', '<', range.to)
        .whereIn('status', statuses)
        .groupBy('t');
      for (const row of (await whereRecordFilters(q, { ...f, status: undefined })) as Array<Record<string, unknown>>) {
        const h = histogramAt(num(row.t));
        BIN_COLUMNS.forEach((c, bin) => (h[bin] = num(row[c])));
      }
    }
    const series: LatencyPoint[] = [];
    for (let t = range.from; t < range.to; t += size) {
      const h = histograms.get(t) ?? emptyHistogram();
      series.push({ t: new Date(t).toISOString(), count: h.reduce((a, n) => a + n, 0), ...latencyPercentiles(h) });
    }
    return series;
  }
}
