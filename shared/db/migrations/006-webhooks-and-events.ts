import type { Knex } from 'knex';

/**
 * The outbox and the event log, both written in the same transaction as the change they
 * report:
 * - record_events: one row per record change, its id a number that only grows (the
 *   position `GET /events` resumes from). Read by id and pruned oldest first by id, so it
 *   needs no index beyond its primary key.
 * - webhook_subscriptions: who wants which events; `secret` holds the signing secret as
 *   stored (encrypted when WEBHOOK_SECRET_KEY is set), and the one before the last
 *   rotation while it still signs.
 * - webhook_deliveries: one per event and matching subscription, with the exact body it
 *   sends. `job_seq` numbers the job that sends its next attempt (the job id is
 *   `<id>-<job_seq>`), so a job left over from an earlier schedule finds no row.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('record_events', (t) => {
    t.bigIncrements('id').primary();
    t.string('type', 32).notNullable();
    t.string('record_id', 36).notNullable();
    t.string('category', 128).notNullable();
    t.string('source', 128).notNullable();
    t.string('from_status', 16);
    t.string('to_status', 16).notNullable();
    t.bigInteger('at').notNullable();
    t.integer('attempt').notNullable();
    t.text('error');
  });
  await knex.schema.createTable('webhook_subscriptions', (t) => {
    t.string('id', 36).primary();
    t.text('url').notNullable();
    t.text('events').notNullable();
    t.text('categories');
    t.text('description');
    t.boolean('enabled').notNullable();
    t.text('secret').notNullable();
    // the secret before the last rotation, still signing until it expires
    t.text('previous_secret');
    t.bigInteger('previous_secret_expires_at');
    t.text('disabled_reason');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });
  await knex.schema.createTable('webhook_deliveries', (t) => {
    t.string('id', 36).primary();
    t.string('subscription_id', 36).notNullable();
    t.string('event', 32).notNullable();
    t.string('record_id', 36).notNullable();
    t.text('body').notNullable();
    t.string('status', 16).notNullable();
    t.integer('attempts').notNullable();
    t.integer('job_seq').notNullable();
    t.integer('last_status_code');
    t.text('last_error');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('delivered_at');
    t.bigInteger('finished_at');
    t.bigInteger('next_attempt_at');
    t.index(['subscription_id', 'id'], 'webhook_deliveries_subscription_idx');
    // the reconciler and the oldest-pending gauge read pending rows only
    t.index(['next_attempt_at', 'id'], 'webhook_deliveries_pending_idx', {
      predicate: knex.whereRaw("status = 'pending'"),
    });
    t.index(['finished_at'], 'webhook_deliveries_finished_idx', { predicate: knex.whereNotNull('finished_at') });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webhook_deliveries');
  await knex.schema.dropTable('webhook_subscriptions');
  await knex.schema.dropTable('record_events');
}
