import type { Knex } from 'knex';
import { createKnex, dialectOf, type Dialect } from './knex.js';
import { migrateLatest } from './migrate.js';
import { RecordsRepository } from './records-repository.js';

export { migrateLatest } from './migrate.js';
export { dialectOf, type Dialect } from './knex.js';
export * from './records-repository.js';

export interface Database {
  readonly knex: Knex;
  readonly dialect: Dialect;
  readonly records: RecordsRepository;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

export function createDatabase(databaseUrl: string): Database {
  const knex = createKnex(databaseUrl);
  return {
    knex,
    dialect: dialectOf(databaseUrl),
    records: new RecordsRepository(knex),
    migrate: () => migrateLatest(knex),
    close: () => knex.destroy(),
  };
}
