import type { Queue } from 'bullmq';
import {
  AppError,
  Coalescer,
  createEnqueuer,
  isRefusedByDatabase,
  isTerminal,
  type Database,
  type FailureFilters,
  type IdempotentRequest,
  type Logger,
  type NewRecord,
  type ProcessJobData,
  type StoredQueueing,
  type RecordInput,
  type StoredResponse,
  type WorkflowRecord,
} from '../../shared/index.js';

/** What a create answers: the response to send, and whether it is a replay of an earlier one. */
export interface CreateOutcome {
  response: Omit<StoredResponse, 'requestHash'>;
  replayed: boolean;
}

export interface CreateRequest {
  inputs: RecordInput[];
  /** also queue them */
  process: boolean;
  requestId: string;
  idempotency: IdempotentRequest | null;
  /** the response for the records once stored (stored with an idempotency key, then replayed) */
  respond(records: WorkflowRecord[]): Omit<StoredResponse, 'requestHash'>;
}

export interface RecordsServiceDeps {
  db: Database;
  queue: Queue<ProcessJobData>;
  logger: Logger;
  /** called with the number of records each create stored */
  onCreated?(count: number): void;
  /** aborted at shutdown: every wait ends at once, and pruning stops */
  shutdown?: AbortSignal;
}

export interface RecordsService {
  create(request: CreateRequest): Promise<CreateOutcome>;
  /** Queues a pending record; with `waitSeconds`, waits (at most that long) for it to finish. */
  process(id: string, requestId: string, waitSeconds: number): Promise<{ record: WorkflowRecord; finished: boolean }>;
  /** The operator's retry of a failed record: back to pending, queued again; `actor` is the key's fingerprint. */
  retry(id: string, requestId: string, actor?: string | null): Promise<WorkflowRecord>;
  /** The operator's retry of up to `limit` failed records matching: each by the single retry's guarded statement. */
  retryMatching(filter: FailureFilters, limit: number, requestId: string, actor?: string | null): Promise<number>;
}

// retried records whose jobs are added together: a bulk retry queues as it goes
const RETRY_ENQUEUE_CHUNK = 500;

// expired idempotency keys are deleted by the API as well as by the workers' reconciler
const PRUNE_INTERVAL_MS = 10 * 60_000;

/**
 * The records use cases, end to end: validation is the route's, everything after it is
 * here — idempotency, the transaction, and the enqueue after commit. Each accepted
 * queueing is enqueued under the number the database stored it with.
 */
export function createRecordsService({ db, queue, logger, onCreated, shutdown }: RecordsServiceDeps): RecordsService {
  // single-record creates from concurrent requests share one transaction, and their jobs one addBulk
  type Inserted = { records: WorkflowRecord[]; queueings: StoredQueueing[] };
  const insertAll = async (items: NewRecord[]): Promise<Inserted> => {
    const outcome = await db.records.insertRecords(items);
    if (outcome.replayed) throw new Error('replay without an idempotency key');
    return outcome;
  };
  // a create the database refuses fails its own request only. Any other error fails the whole
  // group: a lost connection may have committed it, and writing its items again would store them twice
  const singleInserts = new Coalescer<NewRecord, Inserted>(
    async (items) => {
      const { records, queueings } = await insertAll(items);
      const queueingOf = new Map(queueings.map((q) => [q.recordId, q]));
      return records.map((record) => {
        const queueing = queueingOf.get(record.id);
        return { records: [record], queueings: queueing ? [queueing] : [] };
      });
    },
    { failsWholeGroup: (err) => !isRefusedByDatabase(err) },
  );
  // adds each queueing's job after commit and confirms it; single creates share one addBulk
  const enqueuer = createEnqueuer({ queue, confirmations: db.reconciliation, logger, shutdown });

  // a wait ends at shutdown: the client gets the 202 it would get once its wait ran out
  const released = new Promise<void>((resolve) => {
    if (shutdown?.aborted) resolve();
    else shutdown?.addEventListener('abort', () => resolve(), { once: true });
  });

  const pruner = setInterval(() => {
    db.idempotency.prune().then(
      (pruned) => pruned > 0 && logger.info({ pruned }, 'expired idempotency keys pruned'),
      (err: Error) => logger.warn({ err: { message: err.message } }, 'pruning idempotency keys failed'),
    );
  }, PRUNE_INTERVAL_MS).unref();
  shutdown?.addEventListener('abort', () => clearInterval(pruner), { once: true });

  async function waitForTerminal(id: string, seconds: number): Promise<WorkflowRecord | null> {
    const deadline = Date.now() + seconds * 1000;
    let delay = 20;
    for (;;) {
      const record = await db.records.findById(id);
      if (!record || isTerminal(record.status) || shutdown?.aborted || Date.now() + delay > deadline) return record;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, delay))), released]);
      clearTimeout(timer);
      delay = Math.min(delay * 1.5, 250);
    }
  }

  async function load(id: string): Promise<WorkflowRecord> {
    const record = await db.records.findById(id);
    if (!record) throw new AppError('RECORD_NOT_FOUND');
    return record;
  }

  return {
    async create({ inputs, process, requestId, idempotency, respond }) {
      if (idempotency) {
        const stored = await db.idempotency.find(idempotency.scope, idempotency.key);
        if (stored) return replay(stored, idempotency);
      }
      const items = inputs.map((input) => ({ input, process, requestId }));
      let inserted: Inserted;
      if (idempotency) {
        const outcome = await db.records.insertRecords(items, { ...idempotency, respond });
        if (outcome.replayed) return replay(outcome, idempotency);
        inserted = outcome;
      } else {
        inserted = items.length === 1 ? await singleInserts.submit(items[0]!) : await insertAll(items);
      }
      onCreated?.(inserted.records.length);
      await enqueuer.enqueue(inserted.queueings.map((q) => ({ ...q, requestId })));
      return { response: respond(inserted.records), replayed: false };
    },

    async process(id, requestId, waitSeconds) {
      const claim = await db.transitions.claimForProcessing(id, requestId);
      if (!claim.claimed) {
        if (claim.reason === 'not_found') throw new AppError('RECORD_NOT_FOUND');
        throw new AppError(claim.reason === 'already_queued' ? 'ALREADY_QUEUED' : 'ALREADY_PROCESSED');
      }
      await enqueuer.enqueue([{ recordId: id, seq: claim.seq, requestId }]);
      const record = waitSeconds > 0 ? await waitForTerminal(id, waitSeconds) : await db.records.findById(id);
      if (!record) throw new AppError('RECORD_NOT_FOUND');
      return { record, finished: isTerminal(record.status) };
    },

    async retry(id, requestId, actor = null) {
      const outcome = await db.transitions.retry(id, requestId, actor);
      if (!outcome.retried) throw new AppError(outcome.reason === 'not_found' ? 'RECORD_NOT_FOUND' : 'NOT_FAILED');
      await enqueuer.enqueue([{ recordId: id, seq: outcome.seq, requestId }]);
      return load(id);
    },

    async retryMatching(filter, limit, requestId, actor = null) {
      const ids = await db.failures.failedIds(filter, limit);
      let retried = 0;
      let jobs: ProcessJobData[] = [];
      for (const id of ids) {
        // a record retried or removed since it was read matches no row here and is skipped
        const outcome = await db.transitions.retry(id, requestId, actor);
        if (!outcome.retried) continue;
        retried += 1;
        jobs.push({ recordId: id, seq: outcome.seq, requestId });
        if (jobs.length === RETRY_ENQUEUE_CHUNK) {
          await enqueuer.enqueue(jobs);
          jobs = [];
        }
      }
      if (jobs.length > 0) await enqueuer.enqueue(jobs);
      return retried;
    },
  };
}

/** The stored first response, or 422 when the key came with another request. */
function replay(stored: StoredResponse, request: IdempotentRequest): CreateOutcome {
  if (stored.requestHash !== null && stored.requestHash !== request.requestHash) {
    throw new AppError('IDEMPOTENCY_KEY_REUSED');
  }
  return {
    response: { statusCode: stored.statusCode, body: stored.body, location: stored.location },
    replayed: true,
  };
}
