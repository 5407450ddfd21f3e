import type { Knex } from 'knex';
import type { RecordFilters } from './reports-repository.js';

export const SORT_FIELDS = ['created_at', 'status', 'category', 'source'] as const;
export type SortField = (typeof SORT_FIELDS)[number];
export type SortOrder = 'asc' | 'desc';

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

export interface ListPlanInput {
  query: ListQuery;
  /** records matching the filters */
  total: number;
  /** records in all */
  all: number;
  /** how many records each equality filter alone matches */
  matchesOf(field: (typeof EQUALITY_FILTERS)[number]): Promise<number>;
}

/**
 * The index a page is read through, for SQLite (whose planner, without statistics, would
 * rather sort every record of a filter than walk an index in the sort order); PostgreSQL
 * has statistics and plans by itself.
 *
 * - The sort field is also an equality filter, or the sort is created_at with an equality
 *   filter: the (filter, created_at, id) index reads the page directly.
 * - Otherwise walking the sort index reads about (offset + limit) × all / total entries
 *   to find a page, and gathering the matches through a filter's index and sorting them
 *   reads about total: whichever is fewer.
 */
export async function chooseListIndex({ query, total, all, matchesOf }: ListPlanInput): Promise<string> {
  const { filters, sortBy } = query;
  const equalities = EQUALITY_FILTERS.filter((f) => filters[f] !== undefined);
  if (sortBy !== 'created_at' && filters[sortBy] !== undefined) return INDEX_OF[sortBy];
  if (sortBy === 'created_at' && equalities.length === 0) return INDEX_OF.created_at;

  // the narrowest way in through a filter
  let gather: { index: string; matches: number } | null = null;
  for (const field of equalities) {
    const matches = equalities.length === 1 ? total : await matchesOf(field);
    if (!gather || matches < gather.matches) gather = { index: INDEX_OF[field], matches };
  }
  if (sortBy === 'created_at') return gather!.index;
  if (filters.from !== undefined || filters.to !== undefined) {
    if (!gather || total < gather.matches) gather = { index: INDEX_OF.created_at, matches: total };
  }
  if (!gather) return INDEX_OF[sortBy];
  const walked = ((query.offset + query.limit + 1) * all) / Math.max(total, 1);
  return 2 * gather.matches < walked ? gather.index : INDEX_OF[sortBy];
}

/** The page's rows in the requested order, one more than the limit to tell whether more follow. */
export function listPageQuery(knex: Knex, query: ListQuery, index: string | null): Knex.QueryBuilder {
  const { filters, sortBy, order, limit, offset, after } = query;
  const q: Knex.QueryBuilder = index ? knex.from(knex.raw('?? INDEXED BY ??', ['records', index])) : knex('records');
  if (filters.status) q.where('status', filters.status);
  if (filters.category) q.where('category', filters.category);
  if (filters.source) q.where('source', filters.source);
  if (filters.from !== undefined) q.where('created_at', '>=', filters.from);
  if (filters.to !== undefined) q.where('created_at', '<', filters.to);
  let key = sortKeyOf(sortBy);
  let position = after;
  if (position && sortBy !== 'created_at' && filters[sortBy] !== undefined) {
    // the sort field is fixed by the filter: compare on the rest, so the index seeks to the position
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
    .limit(limit + 1)
    .offset(offset);
}
