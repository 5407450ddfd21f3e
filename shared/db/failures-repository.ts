import type { Knex } from 'knex';
import { guardFor } from '../state-machine.js';
import { iso } from './sql.js';

/** Which failed records an operator means: the created_at range is [from, to). */
export interface FailureFilters {
  category?: string;
  source?: string;
  /** the error text, exactly */
  error?: string;
  /** part of the error text (case-sensitive) */
  errorContains?: string;
  from?: number;
  to?: number;
}

export interface FailureGroup {
  error: string | null;
  count: number;
  /** the earliest and latest time a record of the group failed */
  first_seen: string | null;
  last_seen: string | null;
}

export interface FailuresReport {
  /** failed records matching */
  total: number;
  /** distinct error texts among them */
  group_count: number;
  /** the largest groups first, at most the number asked for */
  groups: FailureGroup[];
}

// the state an operator's retry starts from: the failed records
const FAILED = guardFor('pending', 'operator');
// SQLite has no statistics: it is told to find failed records through the status index
const STATUS_INDEX = 'records_status_created_idx';

/**
 * The failed records as an operator sees them: grouped by their error, and picked for a
 * bulk retry. Every read starts from the status index at `failed`, so its cost follows
 * the number of failed records matched, not the size of the table.
 */
export class FailuresRepository {
  constructor(private readonly reader: Knex) {}

  private failed(f: FailureFilters): Knex.QueryBuilder {
    const knex = this.reader;
    const q =
      knex.client.config.client === 'sqlite3'
        ? knex.from(knex.raw('?? INDEXED BY ??', ['records', STATUS_INDEX]))
        : knex('records');
    q.where('status', FAILED);
    if (f.category !== undefined) q.where('category', f.category);
    if (f.source !== undefined) q.where('source', f.source);
    if (f.error !== undefined) q.where('error', f.error);
    if (f.errorContains !== undefined) {
      // a substring, not LIKE: no wildcards to escape, and case-sensitive on both engines
      const position = knex.client.config.client === 'pg' ? 'strpos(error, ?)' : 'instr(error, ?)';
      q.where(knex.raw(`${position} > 0`, [f.errorContains]));
    }
    if (f.from !== undefined) q.where('created_at', '>=', f.from);
    if (f.to !== undefined) q.where('created_at', '<', f.to);
    return q;
  }

  /** The matching failed records grouped by error text, the largest groups first. */
  async report(f: FailureFilters, maxGroups: number): Promise<FailuresReport> {
    const knex = this.reader;
    const rows = (await this.failed(f)
      .select('error')
      .select(
        knex.raw('COUNT(*) AS n'),
        knex.raw('MIN(processed_at) AS first_at'),
        knex.raw('MAX(processed_at) AS last_at'),
        knex.raw('COUNT(*) OVER () AS group_count'),
        knex.raw('SUM(COUNT(*)) OVER () AS total'),
      )
      .groupBy('error')
      .orderBy([{ column: 'n', order: 'desc' }, { column: 'error' }])
      .limit(maxGroups)) as Array<{
      error: string | null;
      n: number | string;
      first_at: number | string | null;
      last_at: number | string | null;
      group_count: number | string;
      total: number | string;
    }>;
    return {
      total: rows.length > 0 ? Number(rows[0]!.total) : 0,
      group_count: rows.length > 0 ? Number(rows[0]!.group_count) : 0,
      groups: rows.map((r) => ({
        error: r.error,
        count: Number(r.n),
        first_seen: r.first_at === null ? null : iso(r.first_at),
        last_seen: r.last_at === null ? null : iso(r.last_at),
      })),
    };
  }

  /** The ids of up to `limit` matching failed records, oldest first. */
  async failedIds(f: FailureFilters, limit: number): Promise<string[]> {
    const rows = (await this.failed(f)
      .select('id')
      .orderBy([{ column: 'created_at' }, { column: 'id' }])
      .limit(limit)) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }
}
