import type { Knex } from 'knex';

/**
 * `actor` on a transition: who made an operator's change (the fingerprint of the API key
 * that sent the retry, never the key). NULL for the workers' transitions, for creations,
 * and for retries sent while the API runs without keys.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('record_transitions', (t) => {
    t.string('actor', 64);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('record_transitions', (t) => {
    t.dropColumn('actor');
  });
}
