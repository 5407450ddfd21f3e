import type { Knex } from 'knex';

/**
 * Runs `read` in one read transaction, so that all of its queries see the same committed
 * state: on PostgreSQL REPEATABLE READ, READ ONLY; on SQLite a transaction on a reading
 * connection, which in WAL mode reads one snapshot from its first statement to its end.
 * Called inside a transaction already, it runs there.
 */
export async function readSnapshot<T>(knex: Knex, read: (trx: Knex) => Promise<T>): Promise<T> {
  if (knex.isTransaction) return read(knex);
  const config: Knex.TransactionConfig =
    knex.client.config.client === 'pg' ? { isolationLevel: 'repeatable read', readOnly: true } : {};
  return knex.transaction((trx) => read(trx), config);
}
