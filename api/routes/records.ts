import type Router from '@koa/router';
import type { Context } from 'koa';
import {
  AppError,
  batchInputSchema,
  Coalescer,
  decodeCursor,
  encodeCursor,
  enqueueProcessing,
  listQuerySchema,
  processQuerySchema,
  recordIdSchema,
  recordInputSchema,
  validate,
  type ListRecordsQuery,
  type NewRecord,
  type ProcessJobData,
  type RecordInput,
  type StoredResponse,
  type WorkflowRecord,
} from '../../shared/index.js';
import { idempotencyKeyOf, replayStoredResponse, requestHashOf } from '../idempotency.js';
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

const isTerminal = (r: WorkflowRecord | null) => r !== null && r.status !== 'pending';

export function registerRecordsRoutes(router: Router, { db, queue, logger, metrics }: RouteDeps): void {
  const { records } = db;

  async function waitForTerminal(id: string, seconds: number): Promise<WorkflowRecord | null> {
    const deadline = Date.now() + seconds * 1000;
    let delay = 20;
    for (;;) {
      const record = await records.findById(id);
      if (isTerminal(record) || Date.now() + delay > deadline) return record;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 1.5, 250);
    }
  }

  async function insertAll(items: NewRecord[]): Promise<WorkflowRecord[]> {
    const outcome = await records.insertRecords(items);
    if (outcome.replayed) throw new Error('replay without an idempotency key');
    return outcome.records;
  }
  // single-record creates from concurrent requests share one transaction,
  // and their jobs one addBulk
  const singleInserts = new Coalescer<NewRecord, WorkflowRecord>(insertAll);
  const singleEnqueues = new Coalescer<ProcessJobData, boolean>(async (jobs) => {
    const added = await enqueueProcessing(queue, jobs, logger);
    return jobs.map(() => added);
  });
  const enqueue = (jobs: ProcessJobData[]) =>
    jobs.length === 1 ? singleEnqueues.submit(jobs[0]!) : enqueueProcessing(queue, jobs, logger);

  /**
   * Stores records (and, with `process`, the intent to process them), then enqueues
   * after commit. With an Idempotency-Key the response is stored in the same
   * transaction and replayed to repeats of the same request.
   */
  async function storeRecords(
    ctx: Context,
    inputs: RecordInput[],
    process: boolean,
    respond: (created: WorkflowRecord[]) => Omit<StoredResponse, 'requestHash'>,
  ): Promise<void> {
    const requestId = ctx.state.requestId as string;
    const key = idempotencyKeyOf(ctx);
    const requestHash = key ? requestHashOf(ctx) : '';
    if (key) {
      const stored = await records.findIdempotentResponse(key);
      if (stored) return replayStoredResponse(ctx, stored, requestHash);
    }
    const items = inputs.map((input) => ({ input, process, requestId }));
    let created: WorkflowRecord[];
    if (key) {
      const outcome = await records.insertRecords(items, { key, requestHash, respond });
      if (outcome.replayed) return replayStoredResponse(ctx, outcome, requestHash);
      created = outcome.records;
    } else {
      created = items.length === 1 ? [await singleInserts.submit(items[0]!)] : await insertAll(items);
    }
    metrics.recordsCreated.inc(created.length);
    if (process) {
      await enqueue(created.map((r) => ({ recordId: r.id, seq: 1, requestId })));
    }
    const response = respond(created);
    ctx.status = response.statusCode;
    if (response.location) ctx.set('Location', response.location);
    ctx.body = response.body;
  }

  router.post('/records', async (ctx) => {
    const { process } = validate<{ process: boolean }>(processQuerySchema, ctx.query, 'query');
    const input = validate<RecordInput>(recordInputSchema, ctx.request.body, 'body');
    await storeRecords(ctx, [input], process, ([record]) => ({
      statusCode: 201,
      body: record,
      location: `/records/${record!.id}`,
    }));
  });

  router.post('/records/batch', async (ctx) => {
    const { process } = validate<{ process: boolean }>(processQuerySchema, ctx.query, 'query');
    const { records: inputs } = validate<{ records: RecordInput[] }>(batchInputSchema, ctx.request.body, 'body');
    await storeRecords(ctx, inputs, process, (created) => ({
      statusCode: 201,
      body: { items: created, count: created.length },
      location: null,
    }));
  });

  router.get('/records', async (ctx) => {
    const q = validate<ListRecordsQuery>(listQuerySchema, ctx.query, 'query');
    const page = await records.list({
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
    });
    ctx.body = {
      items: page.records,
      count: page.records.length,
      total: page.total,
      limit: q.limit,
      next_cursor: page.next ? encodeCursor(q, page.next) : null,
    };
  });

  router.get('/records/:id', async (ctx) => {
    const record = await records.findById(recordId(ctx));
    if (!record) throw new AppError('RECORD_NOT_FOUND');
    ctx.body = record;
  });

  router.get('/records/:id/history', async (ctx) => {
    const items = await records.history(recordId(ctx));
    if (!items) throw new AppError('RECORD_NOT_FOUND');
    ctx.body = { items };
  });

  router.post('/records/:id/process', async (ctx) => {
    const id = recordId(ctx);
    const claim = await records.claimForProcessing(id, ctx.state.requestId);
    if (!claim.claimed) {
      if (claim.reason === 'not_found') throw new AppError('RECORD_NOT_FOUND');
      throw new AppError(claim.reason === 'already_queued' ? 'ALREADY_QUEUED' : 'ALREADY_PROCESSED');
    }
    await enqueue([{ recordId: id, seq: claim.seq, requestId: ctx.state.requestId }]);
    ctx.set('Location', `/records/${id}`);

    const wait = preferredWaitSeconds(ctx.get('Prefer'));
    const record = wait > 0 ? await waitForTerminal(id, wait) : await records.findById(id);
    if (wait > 0) ctx.set('Preference-Applied', `wait=${wait}`);
    ctx.status = isTerminal(record) ? 200 : 202;
    ctx.body = record;
  });

  router.post('/records/:id/retry', async (ctx) => {
    const id = recordId(ctx);
    const outcome = await records.retry(id, ctx.state.requestId);
    if (!outcome.retried) throw new AppError(outcome.reason === 'not_found' ? 'RECORD_NOT_FOUND' : 'NOT_FAILED');
    await enqueue([{ recordId: id, seq: outcome.seq, requestId: ctx.state.requestId }]);
    ctx.status = 202;
    ctx.set('Location', `/records/${id}`);
    ctx.body = await records.findById(id);
  });
}
