import { expect } from 'chai';
import type { Knex } from 'knex';
import * as records from '../../shared/db/migrations/001-records.js';
import * as intent from '../../shared/db/migrations/002-idempotency-and-intent.js';
import { createDatabase, rebuildReportCounts, type Database } from '../../shared/index.js';
import { atTime } from '../helpers/clock.js';
import { counters, counts, plainCounts } from '../helpers/counters.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const HOUR = 3_600_000;
// late in a UTC day: the records cross hour and day boundaries
const T0 = Date.UTC(2026, 0, 5, 22, 50);

// the migrations before the report counters, under the names migrate.ts registers them by
const BEFORE_COUNTERS: ReadonlyArray<[string, typeof records]> = [
  ['001-records', records],
  ['002-idempotency-and-intent', intent],
];

async function migrateBeforeCounters(knex: Knex): Promise<void> {
  await knex.migrate.latest({
    migrationSource: {
      getMigrations: async () => BEFORE_COUNTERS.map(([name]) => name),
      getMigrationName: (name: string) => name,
      getMigration: async (name: string) => BEFORE_COUNTERS.find(([n]) => n === name)![1],
    },
  });
}

// a record's columns as migration 002 left them
const RECORD_COLUMNS = [
  'id',
  'source',
  'category',
  'payload',
  'status',
  'result',
  'error',
  'attempts',
  'queue_seq',
  'queued_at',
  'queued_request_id',
  'created_at',
  'updated_at',
  'processed_at',
];

/** Records written through the real write paths: created, processed or failed after various latencies, some retried and processed again. */
async function writeThroughTheService(db: Database): Promise<void> {
  const created: Array<{ id: string; at: number }> = [];
  for (let i = 0; i < 40; i++) {
    const at = T0 + i * 11 * 60_000;
    const out = await atTime(at, () =>
      db.records.insertRecords(
        [0, 1].map((j) => ({
          input: { category: `c${(i + j) % 3}`, source: `s${i % 2}`, payload: {} },
          process: true,
          requestId: null,
        })),
      ),
    );
    if (out.replayed) throw new Error('unexpected replay');
    created.push(...out.records.map((r) => ({ id: r.id, at })));
  }
  const latencies = [0, 3, 900, 1500, 60_000, 5 * HOUR, 30 * HOUR];
  const failed: typeof created = [];
  for (const [k, r] of created.entries()) {
    if (k % 5 === 0) continue;
    const to = k % 3 === 0 ? 'failed' : 'processed';
    const group = [{ recordId: r.id, seq: 1, to, attempt: 1, requestId: null, jobId: null }] as const;
    await atTime(r.at + latencies[k % latencies.length]!, () => db.transitions.applyTransitions([...group]));
    if (to === 'failed') failed.push(r);
  }
  for (const [k, r] of failed.entries()) {
    if (k % 2 === 0) continue;
    const retriedAt = r.at + 2 * HOUR;
    await atTime(retriedAt, () => db.transitions.retry(r.id, null));
    if (k % 3 === 0) continue;
    const [queued] = await db.records.findQueued([r.id]);
    await atTime(retriedAt + 700, () =>
      db.transitions.applyTransitions([
        { recordId: r.id, seq: queued!.queueSeq, to: 'processed', attempt: 1, requestId: null, jobId: null },
      ]),
    );
  }
}

describe('migration 003 counts the records it finds', function () {
  this.timeout(60_000);
  const opened: Array<{ test: TestDatabase; db: Database }> = [];
  async function open(): Promise<Database> {
    const test = await createTestDatabase();
    const db = createDatabase(test.url);
    opened.push({ test, db });
    return db;
  }
  afterEach(async () => {
    for (const { test, db } of opened.splice(0)) {
      await db.close();
      await test.drop();
    }
  });

  it('into the same counters the write paths keep', async () => {
    const service = await open();
    await service.migrate();
    await writeThroughTheService(service);
    const kept = await counters(service.knex);

    // the same records in a database that had not yet counted anything
    const upgraded = await open();
    await migrateBeforeCounters(upgraded.knex);
    const rows = await service.knex('records').select(RECORD_COLUMNS);
    await upgraded.knex.batchInsert('records', rows, 100);
    expect(await upgraded.migrate()).to.include('003-report-counters');

    expect(await counters(upgraded.knex)).to.deep.equal(kept);
    expect(await counts(upgraded.knex)).to.deep.equal(await plainCounts(upgraded.knex));
  });

  it('records no write path makes too, with every latency bin, as rebuild-report-counts counts them', async () => {
    const db = await open();
    await migrateBeforeCounters(db.knex);
    // around every bin edge (2^(i/4) ms), below 1 ms, past 2^32 ms, and negative (a worker clock behind)
    const latencies = new Set<number>([-5, 0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 40]);
    for (let i = 0; i <= 128; i++) {
      const edge = Math.ceil(2 ** (i / 4));
      for (const ms of [edge - 1, edge, edge + 1]) latencies.add(ms);
    }
    const rows = [...latencies].map((ms, i) => {
      const created = T0 + i * 97_000;
      return {
        id: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
        source: `s${i % 3}`,
        category: `c${i % 4}`,
        payload: '{}',
        status: i % 7 === 0 ? 'pending' : i % 2 ? 'processed' : 'failed',
        attempts: 1,
        queue_seq: 1,
        created_at: created,
        updated_at: created,
        // some terminal ones without processed_at, as only a hand-edited row can be
        processed_at: i % 7 === 0 || i % 5 === 0 ? null : created + ms,
      };
    });
    await db.knex.batchInsert('records', rows, 100);
    await db.migrate();
    const migrated = await counters(db.knex);
    await rebuildReportCounts(db.knex);
    expect(migrated).to.deep.equal(await counters(db.knex));
    expect(await counts(db.knex)).to.deep.equal(await plainCounts(db.knex));
  });
});
