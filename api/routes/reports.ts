import type Router from '@koa/router';
import { summaryQuerySchema, validate, type SummaryFilters } from '../../shared/index.js';
import type { AppDeps } from '../deps.js';

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

export function registerReportsRoutes(router: Router, { db }: AppDeps): void {
  router.get('/reports/summary', async (ctx) => {
    const filters = validate<SummaryFilters>(summaryQuerySchema, ctx.query, 'query');
    const summary = await db.records.summary(filters);
    ctx.body = { generated_at: new Date().toISOString(), filters: describeFilters(filters), ...summary };
  });
}
