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

interface CategoryStatusCount {
  category: string;
  status: string;
  n: number | string;
}

/**
 * The reports, read from the counters (see report-counters.ts): a date range is counted as
 * whole days and hours from the counters plus at most half an hour of records at each end,
 * so a report's cost depends on the number of categories, sources and days in the range,
 * not on the number of records.
 */
export class ReportsRepository {
  constructor(private readonly knex: Knex) {}

  /** How many records match (the listing's `total`). */
  async count(f: RecordFilters): Promise<number> {
    return (await this.countBy(null, f)).get('') ?? 0;
  }

  /** How many records match, per value of a field (under the key '' without a field). */
  async countBy(field: 'status' | 'category' | 'source' | null, f: RecordFilters): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const add = (rows: Array<{ v?: unknown; n: unknown }>, sign: number) => {
      for (const row of rows) {
        const key = field === null ? '' : String(row.v);
        out.set(key, (out.get(key) ?? 0) + sign * num(row.n));
      }
    };
    const perValue = (q: Builder) => (field === null ? q : q.select({ v: field }).groupBy(field));
    const pieces = coverRange(f.from, f.to);
    for (const sign of [1, -1] as const) {
      const counted = bySign(pieces, sign).filter((p) => p.grain !== 'raw');
      if (counted.length > 0) {
        const q = whereCounterPieces(perValue(this.knex('record_counts').sum({ n: 'n' })), counted);
        add((await whereRecordFilters(q, f)) as Array<{ v?: unknown; n: unknown }>, sign);
      }
      for (const p of bySign(pieces, sign).filter((x) => x.grain === 'raw')) {
        const q = perValue(this.knex('records').count({ n: '*' }))
          .where('created_at', '>=', p.from)
          .andWhere('created_at', '<', p.to);
        add((await whereRecordFilters(q, f)) as Array<{ v?: unknown; n: unknown }>, sign);
      }
    }
    return out;
  }

  /**
   * The matching records counted per category and status, and the latency histogram of
   * the terminal ones (empty when only pending records can match).
   */
  async tally(f: RecordFilters): Promise<{ counts: Map<string, Map<string, number>>; histogram: LatencyHistogram }> {
    const pieces = coverRange(f.from, f.to);
    const counts = new Map<string, Map<string, number>>();
    const add = (rows: CategoryStatusCount[], sign: number) => {
      for (const { category, status, n } of rows) {
        const byStatus = counts.get(category) ?? new Map<string, number>();
        byStatus.set(status, (byStatus.get(status) ?? 0) + sign * num(n));
        counts.set(category, byStatus);
      }
    };
    const histogram = emptyHistogram();
    const wantsLatency = f.status === undefined || isTerminal(f.status);

    for (const sign of [1, -1] as const) {
      const counted = bySign(pieces, sign).filter((p) => p.grain !== 'raw');
      if (counted.length > 0) {
        const q = this.knex('record_counts').select('category', 'status').sum({ n: 'n' }).groupBy('category', 'status');
        add((await whereRecordFilters(whereCounterPieces(q, counted), f)) as CategoryStatusCount[], sign);
        if (wantsLatency) {
          const sums = BIN_COLUMNS.map((c) => this.knex.raw('SUM(??) AS ??', [c, c]));
          const h = whereCounterPieces(this.knex('record_counts').select(sums), counted).whereIn(
            'status',
            TERMINAL_STATUSES,
          );
          const [row] = (await whereRecordFilters(h, f)) as Array<Record<string, unknown>>;
          BIN_COLUMNS.forEach((c, bin) => (histogram[bin]! += sign * num(row?.[c])));
        }
      }
      for (const p of bySign(pieces, sign).filter((x) => x.grain === 'raw')) {
        const inRange = (q: Builder) =>
          whereRecordFilters(q.where('created_at', '>=', p.from).andWhere('created_at', '<', p.to), f);
        const q = this.knex('records').select('category', 'status').count({ n: '*' }).groupBy('category', 'status');
        add((await inRange(q)) as CategoryStatusCount[], sign);
        if (wantsLatency) {
          const l = this.knex('records')
            .select(this.knex.raw('processed_at - created_at AS ms'))
            .whereIn('status', TERMINAL_STATUSES)
            .whereNotNull('processed_at');
          for (const { ms } of (await inRange(l)) as Array<{ ms: number | string }>) {
            histogram[latencyBin(Number(ms))]! += sign;
          }
        }
      }
    }
    return { counts, histogram };
  }

  async summary(f: RecordFilters): Promise<Summary> {
    const { counts, histogram } = await this.tally(f);
    const totals: StatusCounts = { all: 0, pending: 0, processed: 0, failed: 0 };
    const byCategory: Summary['by_category'] = [];
    for (const [category, byStatus] of counts) {
      const entry = { category, count: 0, pending: 0, processed: 0, failed: 0 };
      for (const status of RECORD_STATUSES) {
        const n = byStatus.get(status) ?? 0;
        entry[status] += n;
        entry.count += n;
        totals[status] += n;
        totals.all += n;
      }
      if (entry.count > 0) byCategory.push(entry);
    }
    byCategory.sort((a, b) => (a.category < b.category ? -1 : 1));
    return { totals, by_category: byCategory, latency_ms: latencyPercentiles(histogram) };
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
}
