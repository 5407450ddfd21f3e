import type Router from '@koa/router';
import type { Context } from 'koa';
import {
  AppError,
  batchInputSchema,
  CSV_MAX_ROWS,
  decodeCursor,
  encodeCursor,
  listQuerySchema,
  processQuerySchema,
  recordIdSchema,
  recordInputSchema,
  retryByFilterSchema,
  validate,
  type FailureFilterInput,
  type FailureFilters,
  type ListQuery,
  type Categories,
  type ErrorDetail,
  type ListRecordsQuery,
  type RecordInput,
  type RetryByFilterInput,
  type WorkflowRecord,
} from '../../shared/index.js';
import { sendCsv, wantsCsv } from '../csv.js';
import { idempotentRequestOf } from '../idempotency.js';
import type { CreateRequest } from '../services/records-service.js';
import type { RouteDeps } from '../deps.js';

const MAX_WAIT_SECONDS = 30;

/** `Prefer: wait=N` (RFC 7240), capped at 30 s; absent or unreadable means do not wait. */
export function preferredWaitSeconds(prefer: string): number {
  const match = /(?:^|[,;\s])wait\s*=\s*"?(\d+)"?/i.exec(prefer);
  return match ? Math.min(Number(match[1]), MAX_WAIT_SECONDS) : 0;
}

/** A malformed id cannot name a record, so it is the same 404 as an unknown one. */
function recordId(ctx: Context): string {
  const id = ctx.params.id as string;
  if (recordIdSchema.validate(id).error) throw new AppError('RECORD_NOT_FOUND');
  return id;
}

const CSV_COLUMNS = [
  'id',
  'source',
  'category',
  'status',
  'attempts',
  'error',
  'created_at',
  'updated_at',
  'processed_at',
  'payload',
  'result',
] as const satisfies ReadonlyArray<keyof WorkflowRecord>;

// rows read per statement while a CSV listing streams
const CSV_PAGE = 1000;

/** The filter fields of a request as the repository names them. */
export function failureFilters(f: FailureFilterInput): FailureFilters {
  return {
    category: f.category,
    source: f.source,
    error: f.error,
    errorContains: f.error_contains,
    from: f.created_after,
    to: f.created_before,
  };
}

/**
 * The categories file's word on each input, before anything is stored: an unlisted category
 * when those are refused, else every payload schema violation, each naming its field.
 */
export function checkCategories(
  categories: Categories,
  inputs: readonly RecordInput[],
  fieldOf: (i: number) => string,
) {
  const unknown: ErrorDetail[] = [];
  const violations: ErrorDetail[] = [];
  inputs.forEach((input, i) => {
    const found = categories.checkPayload(input.category, input.payload, `${fieldOf(i)}.payload`);
    if (found === 'unknown') {
      unknown.push({ field: `${fieldOf(i)}.category`, message: `category "${input.category}" is not listed` });
    } else {
      violations.push(...found);
    }
  });
  if (unknown.length > 0) throw new AppError('UNKNOWN_CATEGORY', undefined, unknown);
  if (violations.length > 0) throw new AppError('VALIDATION_ERROR', undefined, violations);
}

export function registerRecordsRoutes(router: Router, { db, records, logger, config }: RouteDeps): void {
  async function create(
    ctx: Context,
    operation: string,
    inputs: RecordInput[],
    process: boolean,
    respond: CreateRequest['respond'],
  ): Promise<void> {
    const requestId = ctx.state.requestId as string;
    const idempotency = idempotentRequestOf(ctx, operation, { process, inputs });
    const { response, replayed } = await records.create({ inputs, process, requestId, idempotency, respond });
    ctx.status = response.statusCode;
    if (response.location) ctx.set('Location', response.location);
    if (replayed) ctx.set('Idempotent-Replayed', 'true');
    ctx.body = response.body;
  }

  router.post('/records', async (ctx) => {
    const { process } = validate<{ process: boolean }>(processQuerySchema, ctx.query, 'query');
    const input = validate<RecordInput>(recordInputSchema, ctx.request.body, 'body');
    checkCategories(config.categories, [input], () => 'body');
    await create(ctx, 'create', [input], process, ([record]) => ({
      statusCode: 201,
      body: record,
      location: `/records/${record!.id}`,
    }));
  });

  router.post('/records/batch', async (ctx) => {
    const { process } = validate<{ process: boolean }>(processQuerySchema, ctx.query, 'query');
    const { records: inputs } = validate<{ records: RecordInput[] }>(batchInputSchema, ctx.request.body, 'body');
    checkCategories(config.categories, inputs, (i) => `body.records.${i}`);
    await create(ctx, 'batch', inputs, process, (created: WorkflowRecord[]) => ({
      statusCode: 201,
      body: { items: created, count: created.length },
      location: null,
    }));
  });

  router.get('/records', async (ctx) => {
    const q = validate<ListRecordsQuery>(listQuerySchema, ctx.query, 'query');
    const query: ListQuery = {
      filters: {
        status: q.status,
        category: q.category,
        source: q.source,
        from: q.created_after,
        to: q.created_before,
      },
      sortBy: q.sort_by,
      order: q.sort_order,
      limit: q.limit,
      offset: q.offset ?? 0,
      after: q.cursor === undefined ? null : decodeCursor(q, q.cursor),
    };
    if (wantsCsv(ctx, q.format)) {
      sendCsv(ctx, 'records.csv', CSV_COLUMNS, everyRecord(query), logger);
      return;
    }
    const page = await db.records.list(query);
    ctx.body = {
      items: page.records,
      count: page.records.length,
      total: page.total,
      limit: q.limit,
      next_cursor: page.next ? encodeCursor(q, page.next) : null,
    };
  });

  /** Every record of the listing from its position on, a page at a time, up to CSV_MAX_ROWS. */
  async function* everyRecord(query: ListQuery): AsyncGenerator<unknown[]> {
    let q: ListQuery = { ...query, limit: CSV_PAGE };
    for (let sent = 0; sent < CSV_MAX_ROWS;) {
      const page = await db.records.list({ ...q, limit: Math.min(CSV_PAGE, CSV_MAX_ROWS - sent) });
      for (const record of page.records) yield CSV_COLUMNS.map((c) => record[c]);
      sent += page.records.length;
      if (!page.next) return;
      q = { ...q, offset: 0, after: page.next };
    }
  }

  router.post('/records/retry', async (ctx) => {
    const { filter, limit } = validate<RetryByFilterInput>(retryByFilterSchema, ctx.request.body, 'body');
    const actor = (ctx.state.apiKeyId as string | undefined) ?? null;
    const retried = await records.retryMatching(failureFilters(filter), limit, ctx.state.requestId as string, actor);
    ctx.status = 202;
    ctx.body = { retried };
  });

  router.get('/records/:id', async (ctx) => {
    const record = await db.records.findById(recordId(ctx));
    if (!record) throw new AppError('RECORD_NOT_FOUND');
    ctx.body = record;
  });

  router.get('/records/:id/history', async (ctx) => {
    const items = await db.transitions.history(recordId(ctx));
    if (!items) throw new AppError('RECORD_NOT_FOUND');
    ctx.body = { items };
  });

  router.post('/records/:id/process', async (ctx) => {
    const id = recordId(ctx);
    const wait = preferredWaitSeconds(ctx.get('Prefer'));
    const { record, finished } = await records.process(id, ctx.state.requestId as string, wait);
    ctx.set('Location', `/records/${id}`);
    if (wait > 0) ctx.set('Preference-Applied', `wait=${wait}`);
    ctx.status = finished ? 200 : 202;
    ctx.body = record;
  });

  router.post('/records/:id/retry', async (ctx) => {
    const id = recordId(ctx);
    const actor = (ctx.state.apiKeyId as string | undefined) ?? null;
    const record = await records.retry(id, ctx.state.requestId as string, actor);
    ctx.status = 202;
    ctx.set('Location', `/records/${id}`);
    ctx.body = record;
  });
}
