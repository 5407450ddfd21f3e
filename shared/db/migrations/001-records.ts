import type { Knex } from 'knex';

// Times are epoch milliseconds in a bigint column on both engines, so date
// arithmetic (bucketing, ranges, latency) is the same integer math everywhere.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('records', (t) => {
    t.string('id', 36).primary();
    t.string('source', 128).notNullable();
    t.string('category', 128).notNullable();
    t.text('payload').notNullable();
    t.string('status', 16).notNullable();
    t.text('result');
    t.text('error');
    t.integer('attempts').notNullable().defaultTo(0);
    // how many times the record was accepted for processing; the job id is derived from it
    t.integer('queue_seq').notNullable().defaultTo(0);
    // the stored intent to process: set while a queueing is outstanding, cleared by the terminal transition
    t.bigInteger('queued_at');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.bigInteger('processed_at');
    t.index(['status', 'queued_at'], 'records_status_queued_idx');
    t.index(['category', 'status'], 'records_category_status_idx');
    t.index(['created_at'], 'records_created_at_idx');
  });
  await knex.schema.createTable('record_transitions', (t) => {
    t.increments('id').primary();
    t.string('record_id', 36).notNullable().references('id').inTable('records').onDelete('CASCADE');
    t.string('from_status', 16);
    t.string('to_status', 16).notNullable();
    t.bigInteger('at').notNullable();
    t.integer('attempt').notNullable();
    t.text('error');
    t.string('request_id', 128);
    t.string('job_id', 128);
    t.index(['record_id', 'id'], 'record_transitions_record_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('record_transitions');
  await knex.schema.dropTable('records');
}
