import type { Knex } from 'knex';
import type { EventType, RecordEvent } from '../events.js';
import type { RecordStatus } from '../state-machine.js';
import { iso, retryWhileBusy } from './sql.js';

export interface EventFilters {
  category?: string;
  source?: string;
  record_id?: string;
}

interface EventRow {
  id: number | string;
  type: EventType;
  record_id: string;
  category: string;
  source: string;
  from_status: RecordStatus | null;
  to_status: RecordStatus;
  at: number | string;
  attempt: number;
  error: string | null;
}

const PRUNE_BATCH = 5000;

export const toEvent = (row: EventRow): RecordEvent => ({
  id: Number(row.id),
  type: row.type,
  data: {
    record_id: row.record_id,
    category: row.category,
    source: row.source,
    from: row.from_status,
    to: row.to_status,
    at: iso(row.at),
    attempt: Number(row.attempt),
    error: row.error,
  },
});

/** The stored event log, read in id order. */
export class EventsRepository {
  constructor(
    private readonly knex: Knex,
    private readonly reader: Knex,
  ) {}

  /** Events with `after < id <= upTo` that pass the filters, oldest first, at most `limit`. */
  async read(after: number, upTo: number, filters: EventFilters, limit: number): Promise<RecordEvent[]> {
    const query = this.reader('record_events')
      .where('id', '>', after)
      .andWhere('id', '<=', upTo)
      .orderBy('id')
      .limit(limit);
    for (const [column, value] of Object.entries(filters)) if (value !== undefined) query.andWhere(column, value);
    return ((await query) as EventRow[]).map(toEvent);
  }

  /** The newest event's id (0 when there is none). */
  async lastId(): Promise<number> {
    const row = (await this.reader('record_events').max({ id: 'id' }).first()) as { id: number | string | null };
    return Number(row?.id ?? 0);
  }

  /**
   * Deletes events older than `before`. Ids grow with time, so it reads the oldest page by
   * id and deletes up to the last old one: no index on `at`, and a pass that finds nothing
   * to delete reads one row.
   */
  async prune(before: number): Promise<number> {
    let total = 0;
    for (;;) {
      const page = (await this.knex('record_events').select('id', 'at').orderBy('id').limit(PRUNE_BATCH)) as Array<{
        id: number | string;
        at: number | string;
      }>;
      const old = page.filter((r) => Number(r.at) < before);
      if (old.length === 0) return total;
      const last = Number(old[old.length - 1]!.id);
      total += await retryWhileBusy(() => this.knex('record_events').where('id', '<=', last).delete());
      if (old.length < page.length || page.length < PRUNE_BATCH) return total;
    }
  }
}
