import { expect } from 'chai';
import sqlite3 from 'sqlite3';
import { createDatabase, type Database } from '../../shared/index.js';
import { withLiterals, Writes } from '../../shared/db/sql.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const sqlite = !process.env.TEST_DATABASE_URL?.startsWith('postgres');

describe('the statements a transaction sends together', () => {
  let database: TestDatabase;
  let db: Database;
  beforeEach(async () => {
    database = await createTestDatabase();
    db = createDatabase(database.url);
    await db.knex.schema.createTable('sample', (t) => {
      t.integer('k').primary();
      t.text('s');
      t.double('x');
    });
  });
  afterEach(async () => {
    await db.close();
    await database.drop();
  });

  it('stores every value exactly as a bound parameter would', async () => {
    const texts = [
      "it's",
      "\\'; SELECT 1; --",
      "'); DROP TABLE sample; --",
      ...(sqlite ? ['a\u0000b'] : []),
      'é 😀 \u2028',
      '',
      '? and ?',
      '\\n is not a newline',
      JSON.stringify({ quote: "'", nul: '\u0000' }),
    ];
    const rows: Array<[number, string | null, number | null]> = texts.map((s, k) => [k, s, k + 0.5]);
    rows.push([texts.length, null, null], [texts.length + 1, 'big', 2 ** 53 - 1], [texts.length + 2, 'neg', -1e-7]);
    await db.knex.transaction(async (trx) => {
      await new Writes(trx).insertRows('sample', ['k', 's', 'x'], rows).flush();
    });
    const stored = (await db.knex('sample').orderBy('k')) as Array<{ k: number; s: string | null; x: number | null }>;
    expect(stored.map((r) => [r.k, r.s, r.x === null ? null : Number(r.x)])).to.deep.equal(rows);
  });

  it('rolls back with its transaction when one statement fails', async () => {
    const failing = db.knex.transaction(async (trx) => {
      await new Writes(trx)
        .insertRows('sample', ['k', 's', 'x'], [[1, 'a', 1]])
        .insertRows('sample', ['k', 's', 'x'], [[1, 'duplicate key', 2]])
        .flush();
    });
    const err = await failing.then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/UNIQUE|duplicate key/);
    const [{ n }] = (await db.knex('sample').count({ n: '*' })) as Array<{ n: number | string }>;
    expect(Number(n)).to.equal(0);
  });

  it('refuses to put values into a statement with quoted text of its own, or values it cannot write', () => {
    expect(() => withLiterals("SELECT '?' WHERE 1 = ?", [1], 'sqlite')).to.throw(/literals of its own/);
    expect(() => withLiterals('SELECT ?, ?', [1], 'sqlite')).to.throw(/2 placeholders for 1 values/);
    expect(() => withLiterals('SELECT ?', [Number.NaN], 'postgres')).to.throw(/cannot write NaN/);
    expect(() => withLiterals('SELECT ?', ['a\u0000b'], 'postgres')).to.throw(/cannot hold NUL/);
  });
});

(sqlite ? describe : describe.skip)('SQLite: a writer meeting another connection’s write lock', () => {
  let database: TestDatabase;
  let dbs: Database[];
  beforeEach(async () => {
    database = await createTestDatabase();
    dbs = [createDatabase(database.url), createDatabase(database.url)];
    await dbs[0]!.migrate();
  });
  afterEach(async () => {
    await Promise.all(dbs.map((d) => d.close()));
    await database.drop();
  });

  const item = (i: number) => ({
    input: { source: 's', category: 'c', payload: { i } },
    process: true,
    requestId: null,
  });

  it('waits until the lock is released, then writes: a transaction and a statement of its own', async () => {
    const other = new sqlite3.Database(database.url.slice('sqlite:'.length));
    const exec = (sql: string) =>
      new Promise<void>((resolve, reject) => other.exec(sql, (e) => (e ? reject(e) : resolve())));
    await exec('BEGIN IMMEDIATE; CREATE TABLE held (x INTEGER);');
    let settled = 0;
    const insert = dbs[0]!.records.insertRecords([item(1)]).finally(() => (settled += 1));
    const deleted = dbs[1]!
      .knex('webhook_subscriptions')
      .delete()
      .finally(() => (settled += 1));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled, 'a write went through while another connection held the lock').to.equal(0);
    await exec('COMMIT;');
    await new Promise<void>((resolve) => other.close(() => resolve()));
    const outcome = await insert;
    expect(outcome.replayed).to.equal(false);
    expect(await deleted).to.equal(0);
    expect(await dbs[0]!.reader('records').count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it('holds the write lock from the start of a transaction, so one that reads before it writes still commits', async () => {
    await dbs[0]!.records.insertRecords([item(1)]);
    const other = new sqlite3.Database(database.url.slice('sqlite:'.length));
    const otherWrite = () =>
      new Promise<Error | null>((resolve) => other.exec('UPDATE records SET updated_at = 1', (e) => resolve(e)));
    let refused: Error | null = null;
    await dbs[0]!.knex.transaction(async (trx) => {
      await trx('records').count({ n: '*' });
      // begun DEFERRED, the read would not hold the lock: this write would go through, and the
      // transaction's own write below would then fail at once, its snapshot out of date
      refused = await otherWrite();
      await trx('records').update({ updated_at: 2 });
    });
    await new Promise<void>((resolve) => other.close(() => resolve()));
    expect((refused as (Error & { code?: string }) | null)?.code).to.equal('SQLITE_BUSY');
    expect(await dbs[0]!.reader('records').select('updated_at')).to.deep.equal([{ updated_at: 2 }]);
  });

  it('loses nothing when two connections write at once, each with many transactions in flight', async () => {
    const writes = dbs.flatMap((d, w) =>
      Array.from({ length: 40 }, (_, i) => d.records.insertRecords([item(w * 100 + i)])),
    );
    await Promise.all(writes);
    const stored = await dbs[1]!.reader('records').count({ n: '*' });
    expect(stored).to.deep.equal([{ n: 80 }]);
    const events = await dbs[1]!.reader('record_events').count({ n: '*' });
    expect(events).to.deep.equal([{ n: 80 }]);
  });
});
