import type { Knex } from 'knex';
import { PROCESSABLE_STATUS } from '../state-machine.js';
import { retryWhileBusy } from './sql.js';

/** A queueing of a record: which job (record id and queueing number) carries it. */
export interface Queueing {
  recordId: string;
  seq: number;
}

/** An outstanding queueing as the reconciler reads it. */
export interface OutstandingIntent extends Queueing {
  requestId: string | null;
  queuedAt: number;
  /** its job was confirmed added to Redis */
  confirmed: boolean;
}

/** Where a keyset read stopped: the (queued_at, id) of its last row. */
export type IntentPosition = [queuedAt: number, recordId: string];

interface IntentRow {
  id: string;
  queue_seq: number | string;
  queued_request_id: string | null;
  queued_at: number | string;
  enqueued_at: number | string | null;
}

// bound parameters per confirmation statement stay far under SQLite's limit
const CONFIRM_CHUNK = 1000;

// partial indexes of migration 005
const UNCONFIRMED_INDEX = 'records_unconfirmed_idx';
const QUEUED_INDEX = 'records_queued_idx';

/**
 * What the reconciler reads to find enqueues that never reached Redis, and the
 * confirmation that a job was added. Both reads are keyset-paged on (queued_at, id)
 * through a partial index (migration 005), so a page costs the same however many
 * records the table holds.
 */
export class ReconciliationRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex,
  ) {}

  /**
   * Intents to process whose job was never confirmed added, stored before
   * `queuedBefore`: the candidates for a lost enqueue (records_unconfirmed_idx).
   */
  async findUnconfirmedIntents(
    queuedBefore: number,
    after: IntentPosition | null,
    limit: number,
  ): Promise<OutstandingIntent[]> {
    const q = this.intents(UNCONFIRMED_INDEX, after, limit)
      .whereNull('enqueued_at')
      .andWhere('queued_at', '<', queuedBefore);
    return toIntents(await q);
  }

  /**
   * Every outstanding queueing stored up to `queuedUntil`, confirmed or not, in
   * (queued_at, id) order (records_queued_idx): the audit's walk. The page is bounded in
   * rows read, whatever their mix; the caller skips the unconfirmed ones.
   */
  async findOutstandingIntents(
    queuedUntil: number,
    after: IntentPosition | null,
    limit: number,
  ): Promise<OutstandingIntent[]> {
    return toIntents(await this.intents(QUEUED_INDEX, after, limit).andWhere('queued_at', '<=', queuedUntil));
  }

  /** Those of these queueings that are still outstanding (the record pending in that queueing): one query. */
  async findIntents(queueings: readonly Queueing[]): Promise<OutstandingIntent[]> {
    if (queueings.length === 0) return [];
    const seqOf = new Map(queueings.map((q) => [q.recordId, q.seq]));
    const rows = (await this.reader('records')
      .select('id', 'queue_seq', 'queued_request_id', 'queued_at', 'enqueued_at')
      .whereIn('id', [...seqOf.keys()])
      .whereNotNull('queued_at')
      .andWhere('status', PROCESSABLE_STATUS)) as IntentRow[];
    return toIntents(rows.filter((r) => seqOf.get(r.id) === Number(r.queue_seq)));
  }

  /**
   * Records that these queueings' jobs were added to Redis: one statement per queueing
   * number among them (a group of new records is one) and 1,000 records. Guarded by id,
   * queueing number and status, so a confirmation that arrives after its queueing ended
   * (or after the next one started) changes nothing.
   */
  async confirmEnqueued(queueings: readonly Queueing[], at = Date.now()): Promise<void> {
    const idsBySeq = new Map<number, string[]>();
    for (const q of queueings) {
      const ids = idsBySeq.get(q.seq);
      if (ids) ids.push(q.recordId);
      else idsBySeq.set(q.seq, [q.recordId]);
    }
    for (const [seq, ids] of idsBySeq) {
      for (let i = 0; i < ids.length; i += CONFIRM_CHUNK) {
        // an IN list on the primary key: SQLite finds each row by id (joined to a VALUES list
        // of a few hundred rows, its planner scans the whole table instead). `status || ''`
        // keeps it off the status index, as in applyTransitions
        const chunk = ids.slice(i, i + CONFIRM_CHUNK);
        const sql = `UPDATE records SET enqueued_at = ?
          WHERE id IN (${chunk.map(() => '?').join(', ')}) AND queue_seq = ? AND status || '' = ?`;
        await retryWhileBusy(() => this.knex.raw(sql, [at, ...chunk, seq, PROCESSABLE_STATUS]));
      }
    }
  }

  private intents(index: string, after: IntentPosition | null, limit: number): Knex.QueryBuilder {
    // SQLite without ANALYZE statistics would rather walk every pending record through the
    // status index and sort them: name the index (PostgreSQL picks it by itself)
    const from: Knex.QueryBuilder =
      this.reader.client.config.client === 'sqlite3'
        ? this.reader.from(this.reader.raw('?? INDEXED BY ??', ['records', index]))
        : this.reader('records');
    const q = from
      .select('id', 'queue_seq', 'queued_request_id', 'queued_at', 'enqueued_at')
      // the partial indexes' predicate, written out so both planners can use them. No status
      // term, which would tempt them into the status index: an intent is only ever stored on a
      // pending record, and findIntents checks the status before anything is added again
      .whereNotNull('queued_at')
      .orderBy([
        { column: 'queued_at', order: 'asc' },
        { column: 'id', order: 'asc' },
      ])
      .limit(limit);
    if (after) q.andWhereRaw('(queued_at, id) > (?, ?)', after);
    return q;
  }
}

function toIntents(rows: IntentRow[]): OutstandingIntent[] {
  return rows.map((r) => ({
    recordId: r.id,
    seq: Number(r.queue_seq),
    requestId: r.queued_request_id,
    queuedAt: Number(r.queued_at),
    confirmed: r.enqueued_at !== null,
  }));
}
