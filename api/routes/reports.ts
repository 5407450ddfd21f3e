import type Router from '@koa/router';
import {
  AppError,
  BUCKET_MS,
  failuresQuerySchema,
  latencyQuerySchema,
  summaryQuerySchema,
  timeseriesQuerySchema,
  validate,
  type FailuresQuery,
  type LatencyQuery,
  type ReportsRepository,
  type SeriesBucket,
  type SummaryFilters,
  type TimeseriesQuery,
} from '../../shared/index.js';
import { sendCsv, wantsCsv } from '../csv.js';
import type { AppDeps } from '../deps.js';
import { failureFilters } from './records.js';

/** The most buckets one series may have: minutes are counted from the records themselves. */
export const MAX_SERIES_BUCKETS: Record<SeriesBucket, number> = { minute: 1440, hour: 2160, day: 3660 };

/** Echo of the filters applied, dates as ISO 8601 instants. */
function describeFilters(f: SummaryFilters): Record<string, string> {
  const out: Record<string, string> = {};
  if (f.status) out.status = f.status;
  if (f.category) out.category = f.category;
  if (f.source) out.source = f.source;
  if (f.date_from !== undefined) out.date_from = new Date(f.date_from).toISOString();
  if (f.date_to !== undefined) out.date_to = new Date(f.date_to).toISOString();
  return out;
}

/**
 * The buckets a series covers, [from, to), read in the snapshot of `reports`; a range of
 * more than MAX_SERIES_BUCKETS is 422. Null when there is nothing to show.
 */
async function seriesRangeOf(
  reports: ReportsRepository,
  q: LatencyQuery,
): Promise<{ from: number; to: number } | null> {
  const filters = { status: q.status, category: q.category, source: q.source };
  const range = await reports.seriesRange({ ...filters, from: q.date_from, through: q.date_to }, q.bucket);
  const buckets = range ? (range.to - range.from) / BUCKET_MS[q.bucket] : 0;
  if (buckets > MAX_SERIES_BUCKETS[q.bucket]) {
    throw new AppError('VALIDATION_ERROR', undefined, [
      {
        field: 'query',
        message: `the range holds ${buckets} ${q.bucket} buckets, at most ${MAX_SERIES_BUCKETS[q.bucket]} are allowed: narrow date_from/date_to or use a larger bucket`,
        type: 'series.too_long',
      },
    ]);
  }
  return range;
}

/** Echo of a failures filter, dates as ISO 8601 instants. */
function describeFailureFilters(f: FailuresQuery): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of ['category', 'source', 'error', 'error_contains'] as const) {
    if (f[field] !== undefined) out[field] = f[field];
  }
  if (f.created_after !== undefined) out.created_after = new Date(f.created_after).toISOString();
  if (f.created_before !== undefined) out.created_before = new Date(f.created_before).toISOString();
  return out;
}

export function registerReportsRoutes(router: Router, { db, logger }: AppDeps): void {
  router.get('/reports/summary', async (ctx) => {
    const f = validate<SummaryFilters>(summaryQuerySchema, ctx.query, 'query');
    // date_to is inclusive; the repository counts [from, to)
    const to = f.date_to === undefined ? undefined : f.date_to + 1;
    const summary = await db.reports.summary({
      status: f.status,
      category: f.category,
      source: f.source,
      from: f.date_from,
      to,
    });
    if (wantsCsv(ctx, f.format)) {
      // the totals first, under an empty category (a category is never empty)
      const { totals } = summary;
      const rows = [
        ['', totals.all, totals.pending, totals.processed, totals.failed],
        ...summary.by_category.map((c) => [c.category, c.count, c.pending, c.processed, c.failed]),
      ];
      sendCsv(ctx, 'summary.csv', ['category', 'count', 'pending', 'processed', 'failed'], rows, logger);
      return;
    }
    ctx.body = { generated_at: new Date().toISOString(), filters: describeFilters(f), ...summary };
  });

  router.get('/reports/timeseries', async (ctx) => {
    const q = validate<TimeseriesQuery>(timeseriesQuerySchema, ctx.query, 'query');
    const filters = { status: q.status, category: q.category, source: q.source };
    // the range and the series from one snapshot, so a record written meanwhile is in both or in neither
    const series = await db.reports.inSnapshot(async (reports) => {
      const range = await seriesRangeOf(reports, q);
      return range ? reports.timeseries(filters, q.bucket, range) : [];
    });
    if (wantsCsv(ctx, q.format)) {
      const rows = series.map((p) => [p.t, p.created, p.processed, p.failed]);
      sendCsv(ctx, 'timeseries.csv', ['t', 'created', 'processed', 'failed'], rows, logger);
      return;
    }
    ctx.body = { generated_at: new Date().toISOString(), bucket: q.bucket, filters: describeFilters(q), series };
  });

  router.get('/reports/latency', async (ctx) => {
    const q = validate<LatencyQuery>(latencyQuerySchema, ctx.query, 'query');
    const filters = { status: q.status, category: q.category, source: q.source };
    const series = await db.reports.inSnapshot(async (reports) => {
      const range = await seriesRangeOf(reports, q);
      return range ? reports.latencySeries(filters, q.bucket, range) : [];
    });
    ctx.body = { generated_at: new Date().toISOString(), bucket: q.bucket, filters: describeFilters(q), series };
  });

  router.get('/reports/failures', async (ctx) => {
    const q = validate<FailuresQuery>(failuresQuerySchema, ctx.query, 'query');
    const report = await db.failures.report(failureFilters(q), q.limit);
    ctx.body = { generated_at: new Date().toISOString(), filters: describeFailureFilters(q), ...report };
  });
}
