import type { Knex } from 'knex';
import { guardFor, INITIAL_STATUS, isTerminal, type RecordStatus } from '../state-machine.js';
import { LATENCY_BINS, latencyBin } from './latency-histogram.js';
import { Writes } from './sql.js';

/**
 * The report counters: what the reports read instead of the records, kept exact by the
 * write paths in the same transaction as the change they count.
 *
 * - `record_counts`: records by the bucket of their `created_at` × category × source ×
 *   current status, with the latency histogram (`b0`‥`b129`) of the terminal ones.
 * - `outcome_counts`: terminal records by the bucket of their `processed_at` (when they
 *   reached their current status) × category × source × status.
 *
 * Each is kept at several grains (an hour, a UTC day, and for `record_counts` all time),
 * so a report reads a few rows per grain step, not one per record.
 */
export const HOUR_MS = 3_600_000;

// the statuses the counted changes move between, from the state machine's table
const PROCESSING_FROM = guardFor('processed', 'worker');
const RETRY_FROM = guardFor('pending', 'operator');
export const DAY_MS = 86_400_000;

export type Grain = 'hour' | 'day' | 'all';
export type CounterTable = 'record_counts' | 'outcome_counts';

const GRAINS: Record<CounterTable, readonly Grain[]> = {
  record_counts: ['hour', 'day', 'all'],
  outcome_counts: ['hour', 'day'],
};

export const GRAIN_MS: Record<Exclude<Grain, 'all'>, number> = { hour: HOUR_MS, day: DAY_MS };

export const KEY_COLUMNS = ['grain', 't', 'category', 'source', 'status'] as const;
export const BIN_COLUMNS: readonly string[] = Array.from({ length: LATENCY_BINS }, (_, i) => `b${i}`);

/** The start of the bucket holding `ms` (0 for the all-time grain). */
export function bucketStart(grain: Grain, ms: number): number {
  if (grain === 'all') return 0;
  const size = GRAIN_MS[grain];
  return ms - (((ms % size) + size) % size);
}

interface CounterDelta {
  key: [Grain, number, string, string, string];
  n: number;
  /** bin → change, only on record_counts rows of terminal records */
  bins: Map<number, number>;
}

/** What a record looks like to the counters. */
export interface CountedRecord {
  id: string;
  category: string;
  source: string;
  status: RecordStatus;
  created_at: number | string;
  processed_at: number | string | null;
}

const latencyOf = (r: { created_at: number | string }, processedAt: number | string) =>
  latencyBin(Number(processedAt) - Number(r.created_at));

/**
 * The changes to the counters of one transaction, summed per counter row, so that a
 * group of any size costs one upsert per table.
 */
export class CountDeltas {
  private readonly rows: Record<CounterTable, Map<string, CounterDelta>> = {
    record_counts: new Map(),
    outcome_counts: new Map(),
  };

  private add(
    table: CounterTable,
    at: number,
    r: Pick<CountedRecord, 'category' | 'source'>,
    status: string,
    n: number,
    bin?: number,
  ): void {
    for (const grain of GRAINS[table]) {
      const key: CounterDelta['key'] = [grain, bucketStart(grain, at), r.category, r.source, status];
      // names never hold NUL (validation refuses it), so NUL separates the key's parts
      const id = key.join('\u0000');
      let delta = this.rows[table].get(id);
      if (!delta) {
        delta = { key, n: 0, bins: new Map() };
        this.rows[table].set(id, delta);
      }
      delta.n += n;
      if (bin !== undefined) delta.bins.set(bin, (delta.bins.get(bin) ?? 0) + n);
    }
  }

  /** A new record, or `n` alike: pending. */
  created(r: Pick<CountedRecord, 'category' | 'source' | 'created_at'>, n = 1): this {
    this.add('record_counts', Number(r.created_at), r, INITIAL_STATUS, n);
    return this;
  }

  /**
   * A record that went from pending to the status and `processed_at` it has now (without
   * `processed_at`, as only a hand-edited row can be, it has no latency and no outcome time).
   */
  finished(r: CountedRecord): this {
    const created = Number(r.created_at);
    this.add('record_counts', created, r, PROCESSING_FROM, -1);
    if (r.processed_at === null) {
      this.add('record_counts', created, r, r.status, 1);
      return this;
    }
    this.add('record_counts', created, r, r.status, 1, latencyOf(r, r.processed_at));
    this.add('outcome_counts', Number(r.processed_at), r, r.status, 1);
    return this;
  }

  /** A failed record, failed at `failedAt`, sent back to pending. */
  reopened(r: Pick<CountedRecord, 'category' | 'source' | 'created_at'>, failedAt: number | string | null): this {
    const created = Number(r.created_at);
    this.add('record_counts', created, r, PROCESSING_FROM, 1);
    if (failedAt === null) {
      // no failure on record (a hand-edited row): the counts move, the latency cannot
      this.add('record_counts', created, r, RETRY_FROM, -1);
      return this;
    }
    this.add('record_counts', created, r, RETRY_FROM, -1, latencyOf(r, failedAt));
    this.add('outcome_counts', Number(failedAt), r, RETRY_FROM, -1);
    return this;
  }

  /**
   * Queues the upsert of every changed counter row on `writes`: `n = n + excluded.n`, in
   * one statement per table (or per chunk of a very large group). Rows are always written
   * in one global order, sorted by key, so concurrent writers on PostgreSQL queue behind
   * each other on a hot row instead of deadlocking.
   */
  apply(writes: Writes): void {
    for (const table of ['record_counts', 'outcome_counts'] as const) {
      const deltas = [...this.rows[table].values()].filter((d) => d.n !== 0 || d.bins.size > 0);
      if (deltas.length === 0) continue;
      deltas.sort((a, b) => compareKeys(a.key, b.key));
      const bins = [...new Set(deltas.flatMap((d) => [...d.bins.keys()]))].sort((a, b) => a - b);
      const columns = [...KEY_COLUMNS, 'n', ...bins.map((bin) => `b${bin}`)];
      const update = [
        `n = ${table}.n + excluded.n`,
        // a bin nobody counted stays NULL, which costs no space on either engine
        ...bins.map(
          (bin) =>
            `b${bin} = CASE WHEN excluded.b${bin} IS NULL THEN ${table}.b${bin} ELSE COALESCE(${table}.b${bin}, 0) + excluded.b${bin} END`,
        ),
      ].join(', ');
      const tuple = `(${columns.map(() => '?').join(', ')})`;
      // stays under SQLite's limit of 32766 bound values per statement
      const chunk = Math.floor(30_000 / columns.length);
      for (let i = 0; i < deltas.length; i += chunk) {
        const rows = deltas.slice(i, i + chunk);
        const values = rows.flatMap((d) => [...d.key, d.n, ...bins.map((bin) => d.bins.get(bin) ?? null)]);
        writes.raw(
          `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${rows.map(() => tuple).join(', ')} ` +
            `ON CONFLICT (${KEY_COLUMNS.join(', ')}) DO UPDATE SET ${update}`,
          values,
        );
      }
    }
  }
}

function compareKeys(a: CounterDelta['key'], b: CounterDelta['key']): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

/** The columns the counters read from a record (a transition RETURNING them saves reading them again). */
export const COUNTED_COLUMNS = ['id', 'category', 'source', 'status', 'created_at', 'processed_at'] as const;

/** Counts records just inserted (pending, created at `createdAt`), in the inserting transaction. */
export function countInsertedRecords(
  writes: Writes,
  records: ReadonlyArray<Pick<CountedRecord, 'category' | 'source'>>,
  createdAt: number,
): void {
  // a batch shares one created_at: count each category × source once, with its number of records
  const alike = new Map<string, { category: string; source: string; n: number }>();
  for (const { category, source } of records) {
    const id = `${category}\u0000${source}`;
    const group = alike.get(id);
    if (group) group.n += 1;
    else alike.set(id, { category, source, n: 1 });
  }
  const deltas = new CountDeltas();
  for (const { category, source, n } of alike.values()) deltas.created({ category, source, created_at: createdAt }, n);
  deltas.apply(writes);
}

/**
 * Counts pending → terminal transitions this transaction just applied, from the rows as
 * they are now (their new status and processed_at).
 */
export function countTransitions(writes: Writes, changed: readonly CountedRecord[]): void {
  const deltas = new CountDeltas();
  for (const r of changed) if (isTerminal(r.status)) deltas.finished(r);
  deltas.apply(writes);
}

/**
 * Counts a retry (failed → pending) just applied in this transaction. The time of the
 * failure, which the update cleared from the record, is the `at` of its last
 * transition to failed in the history written with it.
 */
export async function countRetry(writes: Writes, recordId: string): Promise<void> {
  const { trx } = writes;
  const row = (await trx('records as r')
    .select('r.category', 'r.source', 'r.created_at')
    .select(
      trx('record_transitions as t')
        .select('t.at')
        .whereRaw('t.record_id = r.id')
        .andWhere('t.to_status', RETRY_FROM)
        .orderBy('t.id', 'desc')
        .limit(1)
        .as('failed_at'),
    )
    .where('r.id', recordId)
    .first()) as
    (Pick<CountedRecord, 'category' | 'source' | 'created_at'> & { failed_at: number | string | null }) | undefined;
  if (!row) return;
  new CountDeltas().reopened(row, row.failed_at).apply(writes);
}

const REBUILD_PAGE = 10_000;

/**
 * Recomputes every counter from the records, replaying each record's life (created, then
 * its terminal transition if it has one) through the same deltas the write paths use.
 * For a database whose counters were bypassed by hand-written SQL. Writers wait for the
 * whole pass (readers do not): a write landing between the reads of the records and the
 * writes of the counters would be counted twice or not at all.
 */
export async function rebuildReportCounts(knex: Knex): Promise<void> {
  await knex.transaction(async (trx) => {
    if (trx.client.config.client === 'pg') {
      // SHARE waits for the writers in flight and keeps new ones out until commit (reads
      // go on); EXCLUSIVE on the counters conflicts with itself, so two rebuilds take turns
      await trx.raw('LOCK TABLE records IN SHARE MODE');
      await trx.raw('LOCK TABLE record_counts, outcome_counts IN EXCLUSIVE MODE');
    }
    // on SQLite the first statement takes the write lock, which excludes every other writer
    await trx('record_counts').delete();
    await trx('outcome_counts').delete();
    const deltas = new CountDeltas();
    // in created_at order, which is about the order rows were written in: pages read nearby rows
    let after: [number, string] | null = null;
    for (;;) {
      const page = trx('records')
        .select(...COUNTED_COLUMNS)
        .orderBy([{ column: 'created_at' }, { column: 'id' }])
        .limit(REBUILD_PAGE);
      if (after !== null) page.whereRaw('(??, ??) > (?, ?)', ['created_at', 'id', ...after]);
      const rows = (await page) as CountedRecord[];
      for (const r of rows) {
        deltas.created(r);
        if (isTerminal(r.status)) deltas.finished(r);
      }
      if (rows.length < REBUILD_PAGE) break;
      const last = rows[rows.length - 1]!;
      after = [Number(last.created_at), last.id];
    }
    const writes = new Writes(trx);
    deltas.apply(writes);
    await writes.flush();
  });
}
