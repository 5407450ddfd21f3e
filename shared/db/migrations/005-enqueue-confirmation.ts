import type { Knex } from 'knex';

/**
 * `enqueued_at`: when the job of the current queueing was confirmed added to Redis (NULL
 * until then, and again once the queueing ends). The reconciler reads outstanding
 * queueings through two partial indexes that hold only rows with an intent to process,
 * so its cost follows what is outstanding, not the size of the table:
 * - records_unconfirmed_idx: intents whose job was never confirmed (normally a handful);
 * - records_queued_idx: every outstanding queueing, in the order the audit walks them.
 * They replace records_status_queued_idx, which held every record. Records queued before
 * this migration start unconfirmed: the reconciler checks each one once and confirms it.
 */
const UNCONFIRMED = 'records_unconfirmed_idx';
const QUEUED = 'records_queued_idx';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('records', (t) => {
    t.bigInteger('enqueued_at');
  });
  await knex.schema.alterTable('records', (t) => {
    t.dropIndex([], 'records_status_queued_idx');
    t.index(['queued_at', 'id'], QUEUED, { predicate: knex.whereNotNull('queued_at') });
    t.index(['queued_at', 'id'], UNCONFIRMED, {
      predicate: knex.whereNull('enqueued_at').whereNotNull('queued_at'),
    });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('records', (t) => {
    t.dropIndex([], UNCONFIRMED);
    t.dropIndex([], QUEUED);
    t.index(['status', 'queued_at'], 'records_status_queued_idx');
  });
  await knex.schema.alterTable('records', (t) => {
    t.dropColumn('enqueued_at');
  });
}
