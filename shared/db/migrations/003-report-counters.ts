import type { Knex } from 'knex';

// The counters as they were defined when this migration was written, frozen here: a
// migration must build the same tables and rows whatever report-counters.ts becomes.
const KEY_COLUMNS = ['grain', 't', 'category', 'source', 'status'] as const;
const LATENCY_BINS = 130;
const BIN_COLUMNS = Array.from({ length: LATENCY_BINS }, (_, i) => `b${i}`);
const TERMINAL = "('processed', 'failed')";
const GRAIN_MS = { hour: 3_600_000, day: 86_400_000 } as const;

// the smallest latency (whole ms) of each bin: bin 0 below 1 ms, bin i in 1‥128 from
// 2^((i-1)/4) ms, bin 129 from 2^32 ms; bins holding no whole ms share the next one's
const LOWEST = Array.from({ length: LATENCY_BINS }, (_, i) =>
  i === 0 ? -Infinity : i === LATENCY_BINS - 1 ? 2 ** 32 : Math.ceil(2 ** ((i - 1) / 4)),
);

/** The latency bin of the SQL expression `ms`: a binary search for the last bin whose lowest value is ≤ ms. */
function binOf(ms: string, lo = 0, hi = LATENCY_BINS - 1): string {
  if (lo === hi) return String(lo);
  const mid = (lo + hi + 1) >> 1;
  return `CASE WHEN ${ms} >= ${LOWEST[mid]} THEN ${binOf(ms, mid, hi)} ELSE ${binOf(ms, lo, mid - 1)} END`;
}

/** The start of the bucket holding the SQL expression `ms` (0 for the all-time grain). */
function bucketOf(grain: 'hour' | 'day' | 'all', ms: string): string {
  if (grain === 'all') return '0';
  const size = GRAIN_MS[grain];
  return `${ms} - (((${ms} % ${size}) + ${size}) % ${size})`;
}

/**
 * Counts the records already stored, as the write paths would have: every record by its
 * created_at bucket with the latency bin of the terminal ones, and every terminal record
 * with a processed_at by that bucket.
 */
async function countExistingRecords(knex: Knex): Promise<void> {
  const latency = `CASE WHEN status IN ${TERMINAL} AND processed_at IS NOT NULL THEN ${binOf('(processed_at - created_at)')} END`;
  const bins = BIN_COLUMNS.map((_, bin) => `SUM(CASE WHEN bin = ${bin} THEN 1 END)`).join(', ');
  for (const grain of ['hour', 'day', 'all'] as const) {
    const t = bucketOf(grain, 'created_at');
    await knex.raw(
      `INSERT INTO record_counts (${KEY_COLUMNS.join(', ')}, n, ${BIN_COLUMNS.join(', ')})
       SELECT '${grain}', t, category, source, status, COUNT(*), ${bins}
       FROM (SELECT ${t} AS t, category, source, status, ${latency} AS bin FROM records) counted
       GROUP BY t, category, source, status`,
    );
  }
  for (const grain of ['hour', 'day'] as const) {
    const t = bucketOf(grain, 'processed_at');
    await knex.raw(
      `INSERT INTO outcome_counts (${KEY_COLUMNS.join(', ')}, n)
       SELECT '${grain}', t, category, source, status, COUNT(*)
       FROM (SELECT ${t} AS t, category, source, status FROM records
             WHERE status IN ${TERMINAL} AND processed_at IS NOT NULL) counted
       GROUP BY t, category, source, status`,
    );
  }
}

function counterTable(knex: Knex, name: string, withLatency: boolean) {
  return knex.schema.createTable(name, (t) => {
    t.string('grain', 8).notNullable();
    // bucket start, epoch ms (0 for the all-time grain)
    t.bigInteger('t').notNullable();
    t.string('category', 128).notNullable();
    t.string('source', 128).notNullable();
    t.string('status', 16).notNullable();
    t.bigInteger('n').notNullable().defaultTo(0);
    // latency histogram of the terminal records counted here; NULL where nothing was counted
    if (withLatency) for (const column of BIN_COLUMNS) t.bigInteger(column);
    t.primary([...KEY_COLUMNS]);
  });
}

const SORT_INDEXES: ReadonlyArray<[string, string[]]> = [
  ['records_created_at_id_idx', ['created_at', 'id']],
  ['records_status_created_idx', ['status', 'created_at', 'id']],
  ['records_category_created_idx', ['category', 'created_at', 'id']],
  ['records_source_created_idx', ['source', 'created_at', 'id']],
];

export async function up(knex: Knex): Promise<void> {
  if (knex.client.config.client === 'pg') {
    // byte order for category and source, as SQLite compares them, whatever the database's locale
    await knex.raw(
      'ALTER TABLE records ALTER COLUMN category TYPE varchar(128) COLLATE "C", ALTER COLUMN source TYPE varchar(128) COLLATE "C"',
    );
  }
  await knex.schema.alterTable('records', (t) => {
    // the listing's sort orders (each ends in the id tie-break) replace the summary's old indexes
    t.dropIndex([], 'records_created_at_idx');
    t.dropIndex([], 'records_category_status_idx');
    for (const [name, columns] of SORT_INDEXES) t.index(columns, name);
    // the minute time series reads outcomes by processed_at; pending rows stay out of it
    t.index(['processed_at'], 'records_processed_at_idx', { predicate: knex.whereNotNull('processed_at') });
  });
  await counterTable(knex, 'record_counts', true);
  await counterTable(knex, 'outcome_counts', false);
  await countExistingRecords(knex);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('outcome_counts');
  await knex.schema.dropTable('record_counts');
  await knex.schema.alterTable('records', (t) => {
    t.dropIndex([], 'records_processed_at_idx');
    for (const [name] of SORT_INDEXES) t.dropIndex([], name);
    t.index(['category', 'status'], 'records_category_status_idx');
    t.index(['created_at'], 'records_created_at_idx');
  });
  if (knex.client.config.client === 'pg') {
    await knex.raw(
      'ALTER TABLE records ALTER COLUMN category TYPE varchar(128) COLLATE "default", ALTER COLUMN source TYPE varchar(128) COLLATE "default"',
    );
  }
}
