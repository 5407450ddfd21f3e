import type { Knex } from 'knex';
import { FailuresRepository } from './failures-repository.js';
import { EventsRepository } from './events-repository.js';
import { IdempotencyRepository } from './idempotency-repository.js';
import { createKnex, dialectOf, type Dialect, type KnexOptions } from './knex.js';
import { migrateLatest } from './migrate.js';
import { Outbox } from './outbox.js';
import { ReconciliationRepository } from './reconciliation-repository.js';
import { RecordsRepository } from './records-repository.js';
import { ReportsRepository } from './reports-repository.js';
import { TransitionsRepository } from './transitions-repository.js';
import { WebhooksRepository } from './webhooks-repository.js';

export { migrateLatest } from './migrate.js';
export { dialectOf, type Dialect, type KnexOptions } from './knex.js';
export * from './failures-repository.js';
export * from './idempotency-repository.js';
export * from './reconciliation-repository.js';
export * from './records-repository.js';
export * from './reports-repository.js';
export * from './transitions-repository.js';
export * from './outbox.js';
export * from './webhooks-repository.js';
export * from './events-repository.js';
export { SORT_FIELDS, type ListPosition, type ListQuery, type SortField, type SortOrder } from './records-listing.js';
export { LATENCY_ERROR, type LatencyPercentiles } from './latency-histogram.js';
export { rebuildReportCounts } from './report-counters.js';

export interface Database {
  /** the connection(s) that write; on SQLite, one per process */
  readonly knex: Knex;
  /** the connection(s) for reads: on SQLite separate from the writer (WAL), on PostgreSQL the same pool */
  readonly reader: Knex;
  readonly dialect: Dialect;
  readonly records: RecordsRepository;
  readonly transitions: TransitionsRepository;
  readonly idempotency: IdempotencyRepository;
  readonly reconciliation: ReconciliationRepository;
  readonly reports: ReportsRepository;
  readonly failures: FailuresRepository;
  /** what every record change writes besides itself: its event and its webhook deliveries */
  readonly outbox: Outbox;
  readonly webhooks: WebhooksRepository;
  readonly events: EventsRepository;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

export function createDatabase(databaseUrl: string, opts: KnexOptions = {}): Database {
  const knex = createKnex(databaseUrl, 'writer', opts);
  const dialect = dialectOf(databaseUrl);
  // a :memory: database exists once per connection: it cannot have a separate reader
  const reader =
    dialect === 'sqlite' && !databaseUrl.endsWith(':memory:') ? createKnex(databaseUrl, 'reader', opts) : knex;
  const idempotency = new IdempotencyRepository(knex, reader);
  const outbox = new Outbox(dialect);
  return {
    knex,
    reader,
    dialect,
    records: new RecordsRepository(knex, reader, idempotency, outbox),
    transitions: new TransitionsRepository(knex, reader, outbox),
    idempotency,
    reconciliation: new ReconciliationRepository(knex, reader),
    // reports only read: on SQLite they use the reading connections
    reports: new ReportsRepository(reader),
    failures: new FailuresRepository(reader),
    outbox,
    webhooks: new WebhooksRepository(knex, reader),
    events: new EventsRepository(knex, reader),
    migrate: () => migrateLatest(knex),
    close: async () => {
      await knex.destroy();
      if (reader !== knex) await reader.destroy();
    },
  };
}
