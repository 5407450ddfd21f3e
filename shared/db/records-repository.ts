import { v7 as uuidv7 } from 'uuid';
import type { Knex } from 'knex';
import type { RecordInput, WorkflowRecord } from '../records.js';
import { INITIAL_STATUS } from '../state-machine.js';
import type { IdempotencyRepository, IdempotentRequest, StoredResponse } from './idempotency-repository.js';
import type { Outbox, OutboxWritten } from './outbox.js';
import { toRecord, type RecordRow } from './record-rows.js';
import { readListPage, sortKeyOf, type ListPosition, type ListQuery } from './records-listing.js';
import { countInsertedRecords } from './report-counters.js';
import { isUniqueViolation, iso, retryWhileBusy, Writes } from './sql.js';

/** A record together with the queueing it is currently in (what a worker needs). */
export interface QueuedRecord {
  record: WorkflowRecord;
  queueSeq: number;
}

export interface NewRecord {
  input: RecordInput;
  /** store the intent to process with the record */
  process: boolean;
  requestId: string | null;
}

/** A queueing stored with a record's intent to process: the job to enqueue after commit. */
export interface StoredQueueing {
  recordId: string;
  seq: number;
}

export interface IdempotentInsert extends IdempotentRequest {
  respond(records: WorkflowRecord[]): Omit<StoredResponse, 'requestHash'>;
}

export type InsertOutcome =
  { replayed: false; records: WorkflowRecord[]; queueings: StoredQueueing[] } | ({ replayed: true } & StoredResponse);

// a record stored with its intent to process is in its first queueing
const FIRST_QUEUEING = 1;

const NEW_RECORD_COLUMNS = [
  'id',
  'source',
  'category',
  'payload',
  'status',
  'queue_seq',
  'queued_at',
  'queued_request_id',
  'created_at',
  'updated_at',
] as const;

/** Storing and reading records. State changes live in TransitionsRepository. */
export class RecordsRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex,
    private readonly idempotency: IdempotencyRepository,
    private readonly outbox: Outbox,
  ) {}

  /**
   * Stores new records in one transaction; a record with `process` has its intent to
   * process stored with it (the caller enqueues after commit). With an idempotency key,
   * the response is stored in the same transaction, so of any number of concurrent
   * requests with one key exactly one creates records and the others get its response.
   */
  async insertRecords(items: readonly NewRecord[], idempotent?: IdempotentInsert): Promise<InsertOutcome> {
    const now = Date.now();
    const at = iso(now);
    const records: WorkflowRecord[] = [];
    const queueings: StoredQueueing[] = [];
    const rows: Knex.Value[][] = [];
    for (const { input, process, requestId } of items) {
      // time-ordered ids: new rows append at the right edge of the primary key index instead of
      // splitting pages all over it, which keeps inserts fast as the table grows
      const id = uuidv7();
      rows.push([
        id,
        input.source,
        input.category,
        JSON.stringify(input.payload),
        INITIAL_STATUS,
        process ? FIRST_QUEUEING : 0,
        process ? now : null,
        process ? requestId : null,
        now,
        now,
      ]);
      if (process) queueings.push({ recordId: id, seq: FIRST_QUEUEING });
      records.push({
        id,
        source: input.source,
        category: input.category,
        payload: input.payload,
        status: INITIAL_STATUS,
        result: null,
        error: null,
        attempts: 0,
        created_at: at,
        updated_at: at,
        processed_at: null,
      });
    }
    const changes = records.map((r) => ({
      type: 'record.created' as const,
      recordId: r.id,
      category: r.category,
      source: r.source,
      from: null,
      to: INITIAL_STATUS,
      attempt: 0,
      error: null,
    }));
    let written: OutboxWritten;
    try {
      written = await retryWhileBusy(() =>
        this.knex.transaction(async (trx) => {
          if (idempotent) {
            const response = idempotent.respond(records);
            await this.idempotency.store(trx, idempotent, response, now);
          }
          const writes = new Writes(trx).insertRows('records', NEW_RECORD_COLUMNS, rows);
          countInsertedRecords(writes, records, now);
          const written = await this.outbox.write(
            writes,
            changes,
            now,
            async () => new Map(records.map((r) => [r.id, r])),
          );
          await writes.flush();
          return written;
        }),
      );
    } catch (err) {
      if (!idempotent || !isUniqueViolation(err)) throw err;
      // another request with this key committed first
      const stored = await this.idempotency.find(idempotent.scope, idempotent.key, this.knex);
      if (!stored) throw err;
      return { replayed: true, ...stored };
    }
    this.outbox.committed(written);
    return { replayed: false, records, queueings };
  }

  async findById(id: string): Promise<WorkflowRecord | null> {
    const row = await this.reader<RecordRow>('records').where({ id }).first();
    return row ? toRecord(row) : null;
  }

  /** Records with their current queueing, one per id in order (null where unknown): one query for many jobs. */
  async findQueued(ids: readonly string[]): Promise<Array<QueuedRecord | null>> {
    const rows = (await this.reader('records').whereIn('id', [...new Set(ids)])) as RecordRow[];
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => {
      const row = byId.get(id);
      return row ? { record: toRecord(row), queueSeq: Number(row.queue_seq) } : null;
    });
  }

  /**
   * A page of records in a total order (the sort field, created_at, id), continued after
   * a position (keyset: a page costs the same however deep, and records inserted
   * meanwhile neither repeat nor push others off a page) or at an offset.
   */
  async list(query: ListQuery): Promise<{ records: WorkflowRecord[]; total: number; next: ListPosition | null }> {
    const { rows, total } = await readListPage(this.reader, query);
    const page = (rows as RecordRow[]).slice(0, query.limit);
    const last = page[page.length - 1];
    const next =
      rows.length > query.limit && last
        ? sortKeyOf(query.sortBy).map((column) =>
            column === 'created_at' ? Number(last.created_at) : (last[column as keyof RecordRow] as string),
          )
        : null;
    return { records: page.map((row) => toRecord(row)), total, next };
  }

  async ping(): Promise<void> {
    await this.knex.raw('select 1');
  }
}
