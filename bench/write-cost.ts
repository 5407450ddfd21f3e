/**
 * npx tsx bench/write-cost.ts [--records 10000] [--database-url sqlite:/tmp/x.db | postgres://…]
 *
 * What a write costs per record through the repository's write paths, on a fresh
 * database: insertRecords in batches of 1 and of 1,000, then applyTransitions for those
 * records in groups of 1 and of 100. It uses nothing but those two calls, so the same file
 * measures the code before and after a change to the write paths.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createDatabase, type TransitionInput } from '../shared/index.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '10000' },
    'database-url': { type: 'string' },
  },
});

const N = Number(args.records);
const file = path.join(os.tmpdir(), `bench-write-cost-${process.pid}.db`);
const url = args['database-url'] ?? `sqlite:${file}`;
const db = createDatabase(url);
await db.migrate();
const input = (i: number) => ({ category: `c${i % 8}`, source: `s${i % 4}`, payload: { priority: i % 6 } });

const perRecord: Array<[string, number]> = [];
for (const [batch, group] of [
  [1, 1],
  [1000, 100],
] as const) {
  const ids: string[] = [];
  let started = performance.now();
  for (let i = 0; i < N; i += batch) {
    const out = await db.records.insertRecords(
      Array.from({ length: batch }, (_, k) => ({ input: input(i + k), process: true, requestId: null })),
    );
    if (!out.replayed) ids.push(...out.records.map((r) => r.id));
  }
  perRecord.push([`insertRecords, batches of ${batch}`, ((performance.now() - started) * 1000) / N]);
  started = performance.now();
  for (let i = 0; i < N; i += group) {
    const transitions: TransitionInput[] = ids.slice(i, i + group).map((recordId, k) => ({
      recordId,
      seq: 1,
      to: k % 10 === 0 ? 'failed' : 'processed',
      attempt: 1,
      requestId: null,
      jobId: null,
    }));
    await db.transitions.applyTransitions(transitions);
  }
  perRecord.push([`applyTransitions, groups of ${group}`, ((performance.now() - started) * 1000) / N]);
}
await db.close();
if (!args['database-url']) for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
for (const [name, us] of perRecord) console.log(`${name.padEnd(36)} ${us.toFixed(0).padStart(6)} µs per record`);
