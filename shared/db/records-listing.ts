import type { Knex } from 'knex';
import type { RecordFilters, ReportsRepository } from './reports-repository.js';

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

// a page that would span more sort-field values than this is read in one query instead
const MAX_GROUPS_PER_PAGE = 8;

/** Byte order of the UTF-8 text, as SQLite and PostgreSQL's "C" collation compare it. */
const compareText = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

interface Read {
  /** the sort field's single value this read covers, or null for the whole order */
  group: string | null;
  /** SQLite only: the index to read through */
  index: string | null;
  after: ListPosition | null;
  offset: number;
  limit: number;
}

/** Rows of one read, in the listing's order. */
function readQuery(knex: Knex, query: ListQuery, read: Read): Knex.QueryBuilder {
  const { filters, sortBy, order } = query;
  const q: Knex.QueryBuilder = read.index
    ? knex.from(knex.raw('?? INDEXED BY ??', ['records', read.index]))
    : knex('records');
  if (filters.status) q.where('status', filters.status);
  if (filters.category) q.where('category', filters.category);
  if (filters.source) q.where('source', filters.source);
  if (read.group !== null) q.where(sortBy, read.group);
  if (filters.from !== undefined) q.where('created_at', '>=', filters.from);
  if (filters.to !== undefined) q.where('created_at', '<', filters.to);
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
 * Up to `limit + 1` rows of a page (one more than asked tells that more follow), and the
 * number of records matching, counted from the report counters.
 *
 * Every read walks an index in the listing's order from the position, so a page costs
 * the same at any depth. Sorted by status, category or source, a page is read one value
 * of that field at a time (the matches per value are known from the counters): within one
 * value the order is created_at, id, so each read seeks straight to a created_at range or
 * position instead of walking past every record of the earlier values.
 *
 * SQLite has no statistics and would rather sort every record of a filter than walk an
 * index in order, so there each read names its index: of the indexes that give the order,
 * the one with the fewest entries for its equality (counted from the counters).
 */
export async function readListPage(
  knex: Knex,
  reports: ReportsRepository,
  query: ListQuery,
): Promise<{ rows: unknown[]; total: number }> {
  const { filters, sortBy, order, limit } = query;
  const total = await reports.count(filters);
  if (total === 0 && query.after === null) return { rows: [], total };
  const sqlite = knex.client.config.client === 'sqlite3';
  const equalities = EQUALITY_FILTERS.filter((f) => filters[f] !== undefined).map((field) => ({
    field,
    value: filters[field]!,
  }));

  // SQLite: of the indexes whose equality gives the order, the one holding the fewest records
  const sizes = new Map<GroupField, Map<string, number>>();
  const narrowest = async (fields: ReadonlyArray<{ field: GroupField; value: string }>): Promise<string | null> => {
    if (!sqlite) return null;
    if (fields.length === 0) return INDEX_OF.created_at;
    let best: { index: string; n: number } | null = null;
    for (const { field, value } of fields) {
      if (!sizes.has(field)) sizes.set(field, await reports.countBy(field, {}));
      const n = fields.length === 1 ? 0 : (sizes.get(field)!.get(value) ?? 0);
      if (!best || n < best.n) best = { index: INDEX_OF[field], n };
    }
    return best!.index;
  };
  const read = async (
    group: string | null,
    index: string | null,
    after: ListPosition | null,
    offset: number,
    n: number,
  ) => (await readQuery(knex, query, { group, index, after, offset, limit: n })) as unknown[];

  if (sortBy === 'created_at' || filters[sortBy] !== undefined) {
    // the order is created_at, id within any equality filter
    return { rows: await read(null, await narrowest(equalities), query.after, query.offset, limit + 1), total };
  }

  // one value of the sort field at a time, in the listing's order
  const field = sortBy;
  const cmp = (a: string, b: string) => (order === 'asc' ? compareText(a, b) : compareText(b, a));
  let groups = [...(await reports.countBy(field, filters))].filter(([, n]) => n > 0).sort(([a], [b]) => cmp(a, b));
  const from = query.after ? String(query.after[0]) : null;
  let offset = query.offset;
  if (from !== null) {
    // the position's value first (if any of it is left), then the values after it
    groups = groups.filter(([v]) => cmp(v, from) >= 0);
  } else {
    while (groups.length > 0 && offset >= groups[0]![1]) offset -= groups.shift()![1];
  }
  let spanned = 0;
  for (let seen = 0; spanned < groups.length && seen < offset + limit + 1; spanned++) seen += groups[spanned]![1];
  if (spanned > MAX_GROUPS_PER_PAGE) {
    // many small values: one walk of the sort field's index
    return { rows: await read(null, sqlite ? INDEX_OF[field] : null, query.after, query.offset, limit + 1), total };
  }

  const rows: unknown[] = [];
  for (const [value] of groups) {
    if (rows.length > limit) break;
    const index = await narrowest([{ field, value }, ...equalities]);
    rows.push(...(await read(value, index, value === from ? query.after : null, offset, limit + 1 - rows.length)));
    offset = 0;
  }
  return { rows, total };
}
