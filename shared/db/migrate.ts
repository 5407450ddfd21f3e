import type { Knex } from 'knex';
import * as records from './migrations/001-records.js';
import * as idempotency from './migrations/002-idempotency-and-intent.js';
import * as reportCounters from './migrations/003-report-counters.js';
import * as idempotencyScope from './migrations/004-idempotency-scope.js';
import * as enqueueConfirmation from './migrations/005-enqueue-confirmation.js';
import * as webhooksAndEvents from './migrations/006-webhooks-and-events.js';
import * as transitionActor from './migrations/007-transition-actor.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

// Migrations are imported, not discovered on disk, so the same list runs from
// TypeScript sources (tests) and from the compiled dist/ (production).
const MIGRATIONS: ReadonlyArray<[string, Migration]> = [
  ['001-records', records],
  ['002-idempotency-and-intent', idempotency],
  ['003-report-counters', reportCounters],
  ['004-idempotency-scope', idempotencyScope],
  ['005-enqueue-confirmation', enqueueConfirmation],
  ['006-webhooks-and-events', webhooksAndEvents],
  ['007-transition-actor', transitionActor],
];

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => MIGRATIONS.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found[1];
  },
};

/** Brings the schema up to date; returns the names of the migrations it ran. */
export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, ran] = (await knex.migrate.latest({ migrationSource: source })) as [number, string[]];
  return ran;
}
