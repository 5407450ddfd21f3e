import { v7 as uuidv7 } from 'uuid';
import type { Knex } from 'knex';
import { readListPage, sortKeyOf, type ListPosition, type ListQuery } from './records-listing.js';
import {
  COUNTED_COLUMNS,
  countInsertedRecords,
  countRetry,
  countTransitions,
  type CountedRecord,
} from './report-counters.js';
import { ReportsRepository } from './reports-repository.js';
import {
  type JsonObject,
  type RecordInput,
  type RecordStatus,
  type TerminalStatus,
  type Transition,
  type WorkflowRecord,
} from '../records.js';

interface RecordRow {
  id: string;
  source: string;
  category: string;
  payload: string;
  status: RecordStatus;
  result: string | null;
  error: string | null;
  attempts: number;
  queue_seq: number;
  queued_at: number | string | null;
  queued_request_id: string | null;
  created_at: number | string;
  updated_at: number | string;
  processed_at: number | string | null;
}

interface TransitionRow {
  from_status: RecordStatus | null;
  to_status: RecordStatus;
  at: number | string;
  attempt: number;
  error: string | null;
  request_id: string | null;
  job_id: string | null;
}

/** A record together with the queueing it is currently in (what a worker needs). */
export interface QueuedRecord {
  record: WorkflowRecord;
  queueSeq: number;
}

export interface StoredResponse {
  requestHash: string;
  statusCode: number;
  body: unknown;
  location: string | null;
}

export interface NewRecord {
  input: RecordInput;
  /** store the intent to process with the record */
  process: boolean;
  requestId: string | null;
}

export interface IdempotentInsert {
  key: string;
  requestHash: string;
  respond(records: WorkflowRecord[]): Omit<StoredResponse, 'requestHash'>;
}

export type InsertOutcome = { replayed: false; records: WorkflowRecord[] } | ({ replayed: true } & StoredResponse);

export interface OutstandingIntent {
  recordId: string;
  seq: number;
  requestId: string | null;
}

export type ClaimOutcome =
  { claimed: true; seq: number } | { claimed: false; reason: 'not_found' | 'not_pending' | 'already_queued' };

export type RetryOutcome = { retried: true; seq: number } | { retried: false; reason: 'not_found' | 'not_failed' };

export interface TransitionInput {
  recordId: string;
  /** the queueing this outcome belongs to; a stale job's outcome matches no row */
  seq: number;
  to: TerminalStatus;
  result?: JsonObject | null;
  error?: string | null;
  attempt: number;
  requestId: string | null;
  jobId: string | null;
}

interface IdempotencyRow {
  key: string;
  request_hash: string;
  status_code: number;
  response: string;
  location: string | null;
  created_at: number | string;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
const BUSY_RETRIES = 5;
// rows per INSERT statement: 1,000 rows of 10 columns stay under SQLite's limit of 32,766 bound parameters
const INSERT_CHUNK = 1000;

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

/**
 * `INSERT INTO <table> (…) VALUES (…), (…)` for `rows` rows: the hot paths skip the
 * query builder, and the same text serves SQLite and PostgreSQL (Knex's own multi-row
 * insert for SQLite is a UNION ALL of SELECTs, slower to parse and capped at 500 rows).
 */
function multiRowInsertSql(table: string, columns: readonly string[], rows: number): string {
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array(rows).fill(tuple).join(', ')}`;
}

const HISTORY_COLUMNS = ['record_id', 'from_status', 'to_status', 'at', 'attempt', 'error', 'request_id', 'job_id'];

/** SQLite: SQLITE_CONSTRAINT_PRIMARYKEY/UNIQUE; PostgreSQL: unique_violation. */
function isUniqueViolation(err: unknown): boolean {
  const { code, message } = err as { code?: string; message?: string };
  return code === '23505' || (code === 'SQLITE_CONSTRAINT' && /UNIQUE|PRIMARY KEY/i.test(message ?? ''));
}

const iso = (ms: number | string): string => new Date(Number(ms)).toISOString();
const isoOrNull = (ms: number | string | null): string | null => (ms === null ? null : iso(ms));

/** `payload` when the caller already holds it parsed (a record just inserted). */
function toRecord(row: RecordRow, payload?: JsonObject): WorkflowRecord {
  return {
    id: row.id,
    source: row.source,
    category: row.category,
    payload: payload ?? (JSON.parse(row.payload) as JsonObject),
    status: row.status,
    result: row.result === null ? null : (JSON.parse(row.result) as JsonObject),
    error: row.error,
    attempts: Number(row.attempts),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    processed_at: isoOrNull(row.processed_at),
  };
}

/**
 * Every SQL statement of the service. State changes are guarded statements
 * (`… WHERE id = ? AND status = ?`) written in the same transaction as their
 * history row, so a change that lost a race matches no row and writes nothing.
 */
export class RecordsRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex = knex,
  ) {}

  /**
   * Runs a write, retrying when SQLite's busy timeout ran out under another
   * process's write lock: the caller sees a slow write, not an error.
   */
  private async write<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= BUSY_RETRIES) throw err;
        await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
      }
    }
  }

  /**
   * Stores new pending records in one transaction; a record with `process` has
   * its intent to process stored with it (the caller enqueues after commit). With
   * an idempotency key, the response is stored in the same transaction, so of any
   * number of concurrent requests with one key exactly one creates records and
   * the others get its response back.
   */
  async insertRecords(items: readonly NewRecord[], idempotency?: IdempotentInsert): Promise<InsertOutcome> {
    const now = Date.now();
    const at = iso(now);
    const records: WorkflowRecord[] = [];
    const bindings: Knex.Value[] = [];
    for (const { input, process, requestId } of items) {
      // time-ordered ids: new rows append at the right edge of the primary key index instead of
      // splitting pages all over it, which keeps inserts fast as the table grows
      const id = uuidv7();
      // in NEW_RECORD_COLUMNS order; the other columns take their defaults
      bindings.push(id, input.source, input.category, JSON.stringify(input.payload), 'pending');
      bindings.push(process ? 1 : 0, process ? now : null, process ? requestId : null, now, now);
      records.push({
        id,
        source: input.source,
        category: input.category,
        payload: input.payload,
        status: 'pending',
        result: null,
        error: null,
        attempts: 0,
        created_at: at,
        updated_at: at,
        processed_at: null,
      });
    }
    try {
      await this.write(() =>
        this.knex.transaction(async (trx) => {
          if (idempotency) {
            const response = idempotency.respond(records);
            await trx('idempotency_keys').insert({
              key: idempotency.key,
              request_hash: idempotency.requestHash,
              status_code: response.statusCode,
              response: JSON.stringify(response.body),
              location: response.location,
              created_at: now,
            });
          }
          const width = NEW_RECORD_COLUMNS.length;
          for (let i = 0; i < items.length; i += INSERT_CHUNK) {
            const count = Math.min(INSERT_CHUNK, items.length - i);
            await trx.raw(
              multiRowInsertSql('records', NEW_RECORD_COLUMNS, count),
              bindings.slice(i * width, (i + count) * width),
            );
          }
          await countInsertedRecords(trx, records, now);
        }),
      );
    } catch (err) {
      if (!idempotency || !isUniqueViolation(err)) throw err;
      // another request with this key committed first
      const stored = await this.findIdempotentResponse(idempotency.key);
      if (!stored) throw err;
      return { replayed: true, ...stored };
    }
    return { replayed: false, records };
  }

  /** The stored first response to an Idempotency-Key, while it is younger than 24 h. */
  async findIdempotentResponse(key: string): Promise<StoredResponse | null> {
    const row = (await this.reader('idempotency_keys')
      .where({ key })
      .andWhere('created_at', '>', Date.now() - IDEMPOTENCY_TTL_MS)
      .first()) as IdempotencyRow | undefined;
    if (!row) return null;
    return {
      requestHash: row.request_hash,
      statusCode: Number(row.status_code),
      body: JSON.parse(row.response) as unknown,
      location: row.location,
    };
  }

  /** Deletes idempotency keys older than 24 h; returns how many. */
  async pruneIdempotencyKeys(): Promise<number> {
    return this.knex('idempotency_keys')
      .where('created_at', '<=', Date.now() - IDEMPOTENCY_TTL_MS)
      .delete();
  }

  /**
   * Pending records whose intent to process is older than `queuedBefore`: the
   * candidates for a lost enqueue. Keyset-paged on id.
   */
  async findOutstandingIntents(
    queuedBefore: number,
    afterId: string | null,
    limit: number,
  ): Promise<OutstandingIntent[]> {
    const q = this.reader('records')
      .select('id', 'queue_seq', 'queued_request_id')
      .where('status', 'pending')
      .whereNotNull('queued_at')
      .andWhere('queued_at', '<', queuedBefore)
      .orderBy('id')
      .limit(limit);
    if (afterId) q.andWhere('id', '>', afterId);
    const rows = (await q) as Array<Pick<RecordRow, 'id' | 'queue_seq' | 'queued_request_id'>>;
    return rows.map((r) => ({ recordId: r.id, seq: Number(r.queue_seq), requestId: r.queued_request_id }));
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
   * Accepts a pending, not yet queued record for processing: one guarded statement,
   * so of any number of concurrent claims exactly one matches the row.
   */
  async claimForProcessing(id: string, requestId: string | null): Promise<ClaimOutcome> {
    const now = Date.now();
    const rows = (await this.knex('records')
      .where({ id, status: 'pending' })
      .whereNull('queued_at')
      .update({
        queue_seq: this.knex.raw('queue_seq + 1'),
        queued_at: now,
        queued_request_id: requestId,
        updated_at: now,
      })
      .returning(['queue_seq'])) as Array<{ queue_seq: number }>;
    if (rows.length === 1) return { claimed: true, seq: Number(rows[0]!.queue_seq) };
    const current = await this.reader<RecordRow>('records').select('status').where({ id }).first();
    if (!current) return { claimed: false, reason: 'not_found' };
    return { claimed: false, reason: current.status === 'pending' ? 'already_queued' : 'not_pending' };
  }

  /** The operator's `failed → pending`, queued again under the next queueing number. */
  async retry(id: string, requestId: string | null): Promise<RetryOutcome> {
    return this.write(() =>
      this.knex.transaction(async (trx) => {
        const now = Date.now();
        const rows = (await trx('records')
          .where({ id, status: 'failed' })
          .update({
            status: 'pending',
            queue_seq: trx.raw('queue_seq + 1'),
            queued_at: now,
            queued_request_id: requestId,
            attempts: 0,
            result: null,
            error: null,
            processed_at: null,
            updated_at: now,
          })
          .returning(['queue_seq'])) as Array<{ queue_seq: number }>;
        if (rows.length === 0) {
          const exists = await trx('records').select('id').where({ id }).first();
          return { retried: false, reason: exists ? 'not_failed' : 'not_found' };
        }
        await trx('record_transitions').insert({
          record_id: id,
          from_status: 'failed',
          to_status: 'pending',
          at: now,
          attempt: 0,
          error: null,
          request_id: requestId,
          job_id: null,
        });
        await countRetry(trx, id);
        return { retried: true, seq: Number(rows[0]!.queue_seq) };
      }),
    );
  }

  /**
   * Guarded terminal transitions with their history rows, all in one transaction
   * (a worker commits the outcomes of jobs that finish together as one group).
   * For each input: false when the guard matched nothing, because another delivery
   * already did it or the outcome belongs to an earlier queueing.
   */
  async applyTransitions(transitions: readonly TransitionInput[]): Promise<boolean[]> {
    // a group may hold two outcomes for one record (a redelivery): the first one is
    // written, the others report that their guard matched nothing
    const firsts = new Map<string, TransitionInput>();
    for (const t of transitions) if (!firsts.has(t.recordId)) firsts.set(t.recordId, t);
    const group = [...firsts.values()];
    if (group.length === 0) return [];
    const now = Date.now();
    // one guarded UPDATE for the whole group (UPDATE … FROM a VALUES list, both engines),
    // RETURNING the ids whose guard matched. The status guard is written `status || ''` so
    // that SQLite finds each row by id: on the bare column its planner walks every pending
    // record through the status index instead, for every group (measured: 436 µs per record
    // in groups of 100 with 10,000 pending).
    const values = group.map(() => '(?, CAST(? AS INTEGER), ?, ?, ?, CAST(? AS INTEGER))').join(', ');
    const bindings = group.flatMap((t) => [
      t.recordId,
      t.seq,
      t.to,
      t.result ? JSON.stringify(t.result) : null,
      t.error ?? null,
      t.attempt,
    ]);
    const sql = `WITH outcome (rid, seq, status, result, error, attempts) AS (VALUES ${values})
      UPDATE records SET status = outcome.status, result = outcome.result, error = outcome.error,
        attempts = outcome.attempts, queued_at = NULL, processed_at = ?, updated_at = ?
      FROM outcome
      WHERE records.id = outcome.rid AND records.status || '' = 'pending' AND records.queue_seq = outcome.seq
      RETURNING ${COUNTED_COLUMNS.map((c) => `records.${c}`).join(', ')}`;
    return this.write(() =>
      this.knex.transaction(async (trx) => {
        const response = (await trx.raw(sql, [...bindings, now, now])) as CountedRecord[] | { rows: CountedRecord[] };
        // the rows whose guard matched, with what the report counters need
        const changed = Array.isArray(response) ? response : response.rows;
        const matched = new Set(changed.map((r) => r.id));
        // in HISTORY_COLUMNS order
        const history = group
          .filter((t) => matched.has(t.recordId))
          .map((t) => [t.recordId, 'pending', t.to, now, t.attempt, t.error ?? null, t.requestId, t.jobId]);
        for (let i = 0; i < history.length; i += INSERT_CHUNK) {
          const rows = history.slice(i, i + INSERT_CHUNK);
          await trx.raw(multiRowInsertSql('record_transitions', HISTORY_COLUMNS, rows.length), rows.flat());
        }
        await countTransitions(trx, changed);
        return transitions.map((t) => matched.has(t.recordId) && firsts.get(t.recordId) === t);
      }),
    );
  }

  /** Makes a transient failure visible on the record while the job waits for its next attempt. */
  async recordFailedAttempt(recordId: string, seq: number, attempt: number, error: string): Promise<void> {
    await this.write(() =>
      this.knex('records')
        .where({ id: recordId, status: 'pending', queue_seq: seq })
        .update({ attempts: attempt, error, updated_at: Date.now() }),
    );
  }

  async history(id: string): Promise<Transition[] | null> {
    const exists = await this.reader('records').select('id').where({ id }).first();
    if (!exists) return null;
    const rows = (await this.reader('record_transitions')
      .select('from_status', 'to_status', 'at', 'attempt', 'error', 'request_id', 'job_id')
      .where({ record_id: id })
      .orderBy('id')) as TransitionRow[];
    return rows.map((r) => ({
      from: r.from_status,
      to: r.to_status,
      at: iso(r.at),
      attempt: Number(r.attempt),
      error: r.error,
      request_id: r.request_id,
      job_id: r.job_id,
    }));
  }

  /**
   * A page of records in a total order (the sort field, created_at, id), continued after
   * a position (keyset: a page costs the same however deep, and records inserted
   * meanwhile neither repeat nor push others off a page) or at an offset. `total` comes
   * from the report counters, not from counting rows.
   */
  async list(query: ListQuery): Promise<{ records: WorkflowRecord[]; total: number; next: ListPosition | null }> {
    const { rows, total } = await readListPage(this.reader, new ReportsRepository(this.reader), query);
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
