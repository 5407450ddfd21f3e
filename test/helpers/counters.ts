import type { Knex } from 'knex';

/**
 * What a plain GROUP BY over the records says each counter row's `n` should be: records
 * per created_at bucket × category × source × status, terminal ones per processed_at
 * bucket. As strings comparable with `counts`.
 */
export async function plainCounts(knex: Knex): Promise<string[]> {
  const out: string[] = [];
  const grains: Array<[string, number | null]> = [
    ['hour', 3_600_000],
    ['day', 86_400_000],
    ['all', null],
  ];
  for (const [table, column] of [
    ['record_counts', 'created_at'],
    ['outcome_counts', 'processed_at'],
  ] as const) {
    for (const [grain, size] of grains) {
      if (table === 'outcome_counts' && size === null) continue;
      const t = size === null ? knex.raw('0') : knex.raw(`?? - (?? % ${size})`, [column, column]);
      const q = knex('records')
        .select({ t }, 'category', 'source', 'status')
        .count({ n: '*' })
        .groupBy(size === null ? ['category', 'source', 'status'] : [t, 'category', 'source', 'status']);
      if (table === 'outcome_counts') q.whereIn('status', ['processed', 'failed']).whereNotNull('processed_at');
      for (const r of (await q) as Array<{ t: unknown; category: string; source: string; status: string; n: unknown }>)
        out.push(`${table} ${grain} ${Number(r.t)} ${r.category} ${r.source} ${r.status} n=${Number(r.n)}`);
    }
  }
  return out.sort();
}

/** `n` of every counter row that counts something, as comparable strings. */
export async function counts(knex: Knex): Promise<string[]> {
  const rows = (await knex
    .select(knex.raw("'record_counts' AS tab"), 'grain', 't', 'category', 'source', 'status', 'n')
    .from('record_counts')
    .where('n', '<>', 0)
    .unionAll((u) =>
      u
        .select(knex.raw("'outcome_counts' AS tab"), 'grain', 't', 'category', 'source', 'status', 'n')
        .from('outcome_counts')
        .where('n', '<>', 0),
    )) as Array<Record<string, unknown>>;
  return rows
    .map(
      (r) =>
        `${String(r.tab)} ${String(r.grain)} ${Number(r.t)} ${String(r.category)} ${String(r.source)} ${String(r.status)} n=${Number(r.n)}`,
    )
    .sort();
}

/** Every counter row with something in it, as comparable strings. */
export async function counters(knex: Knex): Promise<string[]> {
  const out: string[] = [];
  for (const table of ['record_counts', 'outcome_counts']) {
    for (const row of (await knex(table).select('*')) as Array<Record<string, unknown>>) {
      const values = Object.entries(row)
        .filter(([k, v]) => (k === 'n' || /^b\d+$/.test(k)) && Number(v ?? 0) !== 0)
        .map(([k, v]) => `${k}=${Number(v)}`)
        .sort();
      if (values.length > 0)
        out.push(
          `${table} ${String(row.grain)} ${Number(row.t)} ${String(row.category)} ${String(row.source)} ${String(row.status)} ${values.join(' ')}`,
        );
    }
  }
  return out.sort();
}
