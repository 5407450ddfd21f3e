import type { Knex } from 'knex';
import { BIN_COLUMNS, KEY_COLUMNS, rebuildReportCounts } from '../report-counters.js';

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
  await rebuildReportCounts(knex);
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
