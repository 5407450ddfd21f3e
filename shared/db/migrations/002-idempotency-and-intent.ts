import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // the first response to each Idempotency-Key, replayed for 24 h to retries with the same request
  await knex.schema.createTable('idempotency_keys', (t) => {
    t.string('key', 255).primary();
    t.string('request_hash', 64).notNullable();
    t.integer('status_code').notNullable();
    t.text('response').notNullable();
    t.string('location', 255);
    t.bigInteger('created_at').notNullable();
    t.index(['created_at'], 'idempotency_keys_created_at_idx');
  });
  // the request that queued the record last, so a job the reconciler adds again carries it too
  await knex.schema.alterTable('records', (t) => {
    t.string('queued_request_id', 128);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('records', (t) => {
    t.dropColumn('queued_request_id');
  });
  await knex.schema.dropTable('idempotency_keys');
}
