import type { Knex } from 'knex';

/**
 * Idempotency keys become per client: a key is unique within a scope (the API key's
 * fingerprint, or '' when the API runs without keys), in a table of its own. Keys stored
 * before move to the keyless scope with no request hash, so a retry that spans the
 * upgrade replays its first response whatever its body (their hashes were computed
 * another way).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('idempotency_responses', (t) => {
    t.string('scope', 64).notNullable();
    t.string('key', 255).notNullable();
    t.string('request_hash', 64);
    t.integer('status_code').notNullable();
    t.text('response').notNullable();
    t.string('location', 255);
    t.bigInteger('created_at').notNullable();
    t.primary(['scope', 'key']);
    t.index(['created_at'], 'idempotency_responses_created_idx');
  });
  await knex.raw(
    `INSERT INTO idempotency_responses (scope, key, request_hash, status_code, response, location, created_at)
     SELECT '', key, NULL, status_code, response, location, created_at FROM idempotency_keys`,
  );
  await knex.schema.dropTable('idempotency_keys');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.createTable('idempotency_keys', (t) => {
    t.string('key', 255).primary();
    t.string('request_hash', 64).notNullable();
    t.integer('status_code').notNullable();
    t.text('response').notNullable();
    t.string('location', 255);
    t.bigInteger('created_at').notNullable();
    t.index(['created_at'], 'idempotency_keys_created_at_idx');
  });
  // keys of other scopes would collide once the scope is gone: only the keyless scope goes back
  await knex.raw(
    `INSERT INTO idempotency_keys (key, request_hash, status_code, response, location, created_at)
     SELECT key, COALESCE(request_hash, ''), status_code, response, location, created_at
     FROM idempotency_responses WHERE scope = ''`,
  );
  await knex.schema.dropTable('idempotency_responses');
}
