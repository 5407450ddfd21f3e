import type { Knex } from 'knex';
import { readSnapshot } from './read-snapshot.js';
import { ReportsRepository, type RecordFilters } from './reports-repository.js';

export const SORT_FIELDS = ['created_at', 'status', 'category', 'source'] as const;
export type SortField = (typeof SORT_FIELDS)[number];
export type SortOrder = 'asc' | 'desc';
type GroupField = Exclude<SortField, 'created_at'>;

/** Where a page ends: the values of the sort key (`sortKeyOf`) of its last record. */
export type ListPosition = Array<string | number>;

export interface ListQuery {
  filters: RecordFilters;
  sortBy: SortField;
  order: SortOrder;
  limit: number;
  offset: number;
  /** continue after this position (keyset pagination) */
  after: ListPosition | null;
}

/** The full order of a listing: the sort field, then created_at, then id, so it is total. */
export function sortKeyOf(sortBy: SortField): string[] {
  return sortBy === 'created_at' ? ['created_at', 'id'] : [sortBy, 'created_at', 'id'];
}

// one index per sort order, each ending in the tie-break (migration 003)
const INDEX_OF: Record<SortField, string> = {
  created_at: 'records_created_at_id_idx',
  status: 'records_status_created_idx',
  category: 'records_category_created_idx',
  source: 'records_source_created_idx',
};

const EQUALITY_FILTERS = ['status', 'category', 'source'] as const;

// values of the sort field one page reads one at a time; the rest of the page is one walk of its index
const MAX_GROUPS_PER_PAGE = 8;

// SQLite planning: the most index entries counted to size one equality, and the most
// all-time counter rows read to compare equalities that reach that
const PROBE_LIMIT = 1000;
const PLAN_COUNTER_ROWS = 5000;
// equalities that cannot be told apart: status has three values, so the largest groups
const PREFERENCE: readonly GroupField[] = ['category', 'source', 'status'];

interface Equality {
  field: GroupField;
  value: string;
}

interface Read {
  /** only this value of the sort field */
  group: string | null;
  /** only this value of the sort field and those after it in the listing's order */
  fromGroup: string | null;
  /** SQLite only: the index to read through */
  index: string | null;
  after: ListPosition | null;
  offset: number;
  limit: number;
}

function whereFilters(q: Knex.QueryBuilder, filters: RecordFilters): Knex.QueryBuilder {
  if (filters.status) q.where('status', filters.status);
  if (filters.category) q.where('category', filters.category);
  if (filters.source) q.where('source', filters.source);
  if (filters.from !== undefined) q.where('created_at', '>=', filters.from);
  if (filters.to !== undefined) q.where('created_at', '<', filters.to);
  return q;
}

const through = (knex: Knex, index: string | null): Knex.QueryBuilder =>
  index ? knex.from(knex.raw('?? INDEXED BY ??', ['records', index])) : knex('records');

/** Rows of one read, in the listing's order. */
function readQuery(knex: Knex, query: ListQuery, read: Read): Knex.QueryBuilder {
  const { filters, sortBy, order } = query;
  const q = whereFilters(through(knex, read.index), filters);
  if (read.group !== null) q.where(sortBy, read.group);
  if (read.fromGroup !== null) q.where(sortBy, order === 'asc' ? '>=' : '<=', read.fromGroup);
  let key = sortKeyOf(sortBy);
  let position = read.after;
  if (position && sortBy !== 'created_at' && (filters[sortBy] !== undefined || read.group !== null)) {
    // the sort field is fixed here: compare on the rest, so the index seeks to the position
    key = key.slice(1);
    position = position.slice(1);
  }
  if (position) {
    const columns = key.map(() => '??').join(', ');
    const values = key.map(() => '?').join(', ');
    q.whereRaw(`(${columns}) ${order === 'asc' ? '>' : '<'} (${values})`, [...key, ...position]);
  }
  return q
    .select('*')
    .orderBy(sortKeyOf(sortBy).map((column) => ({ column, order })))
    .limit(read.limit)
    .offset(read.offset);
}

/**
 * The value of a sort field that follows `value` in the listing's order (the first value
 * without one), read from the records through the field's index: one seek, however many
 * records and values there are.
 */
async function nextValue(
  knex: Knex,
  field: GroupField,
  order: SortOrder,
  value: string | null,
): Promise<string | null> {
  const q = knex('records')[order === 'asc' ? 'min' : 'max']({ v: field });
  if (value !== null) q.where(field, order === 'asc' ? '>' : '<', value);
  const row = (await q.first()) as { v: string | null } | undefined;
  return row?.v ?? null;
}

/**
 * SQLite has no statistics and would rather sort every record of a filter than walk an
 * index in order, so there each read names its index: of the indexes whose equality gives
 * the order, the one with the fewest entries. An equality is sized from its index in the
 * created_at range, counting up to PROBE_LIMIT entries; equalities past that are compared
 * by their all-time report counters (when there are at most PLAN_COUNTER_ROWS of those),
 * else by PREFERENCE. Every read here is bounded, and none decides which rows come back.
 */
class IndexChooser {
  private readonly probed = new Map<string, number>();
  private readonly counted = new Map<string, number>();
  private tooManyCounters = false;

  constructor(
    private readonly knex: Knex,
    private readonly filters: RecordFilters,
  ) {}

  async choose(equalities: readonly Equality[]): Promise<string> {
    if (equalities.length === 0) return INDEX_OF.created_at;
    if (equalities.length === 1) return INDEX_OF[equalities[0]!.field];
    const sizes: number[] = [];
    for (const e of equalities) sizes.push(await this.probe(e));
    if (sizes.every((n) => n >= PROBE_LIMIT)) {
      const counted = await this.count(equalities);
      if (counted) counted.forEach((n, i) => (sizes[i] = n));
    }
    const ranked = equalities.map(({ field }, i) => ({ field, n: sizes[i]!, preference: PREFERENCE.indexOf(field) }));
    ranked.sort((a, b) => a.n - b.n || a.preference - b.preference);
    return INDEX_OF[ranked[0]!.field];
  }

  /** Index entries of the equality in the created_at range, up to PROBE_LIMIT. */
  private async probe({ field, value }: Equality): Promise<number> {
    const key = `${field}\u0000${value}`;
    let n = this.probed.get(key);
    if (n === undefined) {
      const entries = through(this.knex, INDEX_OF[field])
        .select(this.knex.raw('1'))
        .where(field, value)
        .limit(PROBE_LIMIT);
      if (this.filters.from !== undefined) entries.where('created_at', '>=', this.filters.from);
      if (this.filters.to !== undefined) entries.where('created_at', '<', this.filters.to);
      const row = (await this.knex.count({ n: '*' }).from(entries.as('entries')).first()) as { n: number | string };
      n = Number(row.n);
      this.probed.set(key, n);
    }
    return n;
  }

  /** All-time records of each equality from the counters; null when they have too many rows to read. */
  private async count(equalities: readonly Equality[]): Promise<number[] | null> {
    const key = (e: Equality) => `${e.field}\u0000${e.value}`;
    if (this.tooManyCounters) return null;
    const missing = equalities.filter((e) => !this.counted.has(key(e)));
    if (missing.length > 0) {
      const rows = this.knex('record_counts')
        .select('category', 'source', 'status', 'n')
        .where({ grain: 'all', t: 0 })
        .limit(PLAN_COUNTER_ROWS + 1);
      const sums = missing.map(({ field, value }, i) =>
        this.knex.raw('SUM(CASE WHEN ?? = ? THEN n ELSE 0 END) AS ??', [field, value, `n${i}`]),
      );
      const row = (await this.knex
        .from(rows.as('counters'))
        .select(this.knex.raw('COUNT(*) AS "rows"'), ...sums)
        .first()) as Record<string, number | string | null>;
      this.tooManyCounters = Number(row.rows) > PLAN_COUNTER_ROWS;
      if (this.tooManyCounters) return null;
      missing.forEach((e, i) => this.counted.set(key(e), Number(row[`n${i}`] ?? 0)));
    }
    return equalities.map((e) => this.counted.get(key(e))!);
  }
}

/** Up to `limit + 1` rows of a page (one more than asked tells that more follow), read from the records. */
async function readRows(knex: Knex, query: ListQuery): Promise<unknown[]> {
  const { filters, sortBy, order, limit } = query;
  const chooser = knex.client.config.client === 'sqlite3' ? new IndexChooser(knex, filters) : null;
  const indexFor = async (equalities: readonly Equality[]) => (chooser ? await chooser.choose(equalities) : null);
  const equalities = EQUALITY_FILTERS.filter((f) => filters[f] !== undefined).map((field) => ({
    field,
    value: filters[field]!,
  }));
  const read = async (r: Partial<Read>) =>
    (await readQuery(knex, query, {
      group: null,
      fromGroup: null,
      index: null,
      after: null,
      offset: 0,
      limit: limit + 1,
      ...r,
    })) as unknown[];

  if (sortBy === 'created_at' || filters[sortBy] !== undefined) {
    // the order is created_at, id within any equality filter
    return read({ index: await indexFor(equalities), after: query.after, offset: query.offset });
  }

  const field = sortBy;
  const sortIndex = chooser ? INDEX_OF[field] : null;
  if (query.offset > 0) {
    // an offset counts through the whole order
    return read({ index: sortIndex, after: query.after, offset: query.offset });
  }

  // one value of the sort field at a time, in the listing's order, each read a seek
  const rows: unknown[] = [];
  let value = query.after ? String(query.after[0]) : await nextValue(knex, field, order, null);
  let after = query.after;
  for (let groups = 0; value !== null; groups++) {
    const wanted = limit + 1 - rows.length;
    if (groups === MAX_GROUPS_PER_PAGE) {
      // many small values: the rest of the page in one walk of the sort field's index
      rows.push(...(await read({ fromGroup: value, index: sortIndex, limit: wanted })));
      break;
    }
    const index = await indexFor([{ field, value }, ...equalities]);
    rows.push(...(await read({ group: value, index, after, limit: wanted })));
    if (rows.length > limit) break;
    value = await nextValue(knex, field, order, value);
    after = null;
  }
  return rows;
}

/**
 * Up to `limit + 1` rows of a page and the number of records matching, read in one
 * snapshot.
 *
 * Which rows come back is decided by the records alone. Every read walks an index in the
 * listing's order from the position, so a page costs the same at any depth. Sorted by
 * status, category or source (without a filter on that field), a page reads one value of
 * that field at a time: within one value the order is created_at, id, so each read seeks
 * straight to a created_at range or position instead of walking past every record of the
 * earlier values, and the next value is one seek in the field's index. A page reads at
 * most MAX_GROUPS_PER_PAGE values that way and the rest in one walk, so its cost does not
 * grow with the number of values. An offset is an OFFSET on the whole order.
 *
 * `total` is counted from the report counters: exact while they are (every write path
 * keeps them so; `npm run rebuild-report-counts` repairs them after hand-written SQL).
 */
export async function readListPage(knex: Knex, query: ListQuery): Promise<{ rows: unknown[]; total: number }> {
  return readSnapshot(knex, async (trx) => {
    const total = await new ReportsRepository(trx).count(query.filters);
    return { rows: await readRows(trx, query), total };
  });
}
