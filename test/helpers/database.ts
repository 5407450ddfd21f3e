import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { testDatabaseUrl } from './env.js';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A database of the test's own: a fresh PostgreSQL schema, or a temp SQLite file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const base = testDatabaseUrl();
  if (base?.startsWith('postgres')) {
    const schema = `t_${randomUUID().replace(/-/g, '')}`;
    const admin = knexFactory({ client: 'pg', connection: base });
    await admin.raw('create schema ??', [schema]);
    await admin.destroy();
    const separator = base.includes('?') ? '&' : '?';
    return {
      url: `${base}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      drop: async () => {
        const dropper = knexFactory({ client: 'pg', connection: base });
        await dropper.raw('drop schema ?? cascade', [schema]);
        await dropper.destroy();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'workflow-test-'));
  return {
    url: `sqlite:${path.join(dir, 'test.db')}`,
    drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
