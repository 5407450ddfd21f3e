/**
 * npm run bench:reports [-- --sizes 100k,1m,5m --iterations 40 --rounds 4 --dir /tmp --out bench/reports-results.json]
 *
 * For each size: a fresh SQLite database in --dir, migrated, seeded with that many records
 * over three weeks (8 categories, 4 sources, skewed; 85% processed, 10% failed, 5% pending;
 * latencies log-normal around 1.5 s with a tail of hours), served by the Koa app on a local
 * port. Then every query type the reports answer is timed through the real HTTP stack (keep-alive),
 * one request at a time, in --rounds rounds that each visit every size in turn, so load that
 * drifts during the run falls on all sizes alike: p50 and p95 of --iterations requests per
 * query and size, after a warm-up pass.
 *
 * Seeding writes the records table directly, in created_at order, with multi-row INSERTs in
 * large transactions (history rows are left out: no report reads them), then builds the
 * counters with rebuildReportCounts, which replays each record through the same deltas the
 * write paths apply (the property test checks that counters kept write by write equal a
 * rebuild). The database is deleted afterwards unless --keep; --reuse <file> measures a
 * database kept earlier instead of seeding one.
 *
 * What the counters add to each write is measured by bench/write-cost.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import bunyan from 'bunyan';
import type { Knex } from 'knex';
import { v7 as uuidv7 } from 'uuid';
import { createApp } from '../api/app.js';
import {
  createDatabase,
  createProcessingQueue,
  createRedisConnection,
  loadConfig,
  rebuildReportCounts,
} from '../shared/index.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100k,1m,5m' },
    iterations: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '4' },
    dir: { type: 'string', default: os.tmpdir() },
    out: { type: 'string', default: 'bench/reports-results.json' },
    'redis-url': { type: 'string' },
    keep: { type: 'boolean', default: false },
    reuse: { type: 'string' },
  },
});

const ITERATIONS = Number(args.iterations);
const ROUNDS = Number(args.rounds);
const DAY = 86_400_000;
const END = Date.UTC(2026, 1, 2); // a Monday
const SPAN = 21 * DAY;
const START = END - SPAN;

const CATEGORIES: Array<[string, number]> = [
  ['order', 30],
  ['invoice', 20],
  ['lead', 15],
  ['ticket', 10],
  ['refund', 10],
  ['signup', 8],
  ['alert', 5],
  ['report', 2],
];
const SOURCES: Array<[string, number]> = [
  ['web', 40],
  ['api', 30],
  ['crm', 20],
  ['batch', 10],
];

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, k: 1e3, m: 1e6 }[m[2]!.toLowerCase() as '' | 'k' | 'm']);
}
const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

/** mulberry32: the same data on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function weighted(random: () => number, table: Array<[string, number]>): string {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let r = random() * total;
  for (const [name, w] of table) if ((r -= w) < 0) return name;
  return table[table.length - 1]![0];
}

const COLUMNS = [
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

/** Writes n records over the three weeks, oldest first, in transactions of 50,000 rows. */
async function seedRecords(knex: Knex, n: number): Promise<void> {
  const random = prng(42);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const perStatement = 1000;
  const placeholders = `(${COLUMNS.map(() => '?').join(',')})`;
  let i = 0;
  while (i < n) {
    await knex.transaction(async (trx) => {
      for (let t = 0; t < 50 && i < n; t++) {
        const rows = Math.min(perStatement, n - i);
        const bindings: Array<string | number | null> = [];
        for (let r = 0; r < rows; r++, i++) {
          const created = START + Math.floor((i * SPAN) / n);
          const u = random();
          const status = u < 0.05 ? 'pending' : u < 0.15 ? 'failed' : 'processed';
          let latency = Math.round(Math.exp(Math.log(1500) + 1.2 * gauss()));
          if (random() < 0.03) latency += Math.round(60_000 + random() * 6 * 3_600_000);
          const processedAt = status === 'pending' ? null : Math.min(created + latency, END + DAY);
          const priority = Math.floor(random() * 6);
          bindings.push(
            // time-ordered ids, as the service makes them
            uuidv7({ msecs: created }),
            weighted(random, SOURCES),
            weighted(random, CATEGORIES),
            JSON.stringify({ priority, ref: `R-${i}` }),
            status,
            status === 'processed' ? JSON.stringify({ classification: 'medium', score: priority }) : null,
            status === 'failed' ? 'invalid priority' : null,
            status === 'pending' ? 0 : 1,
            1,
            status === 'pending' ? created : null,
            null,
            created,
            processedAt ?? created,
            processedAt,
          );
        }
        await trx.raw(
          `INSERT INTO records (${COLUMNS.join(',')}) VALUES ${new Array(rows).fill(placeholders).join(',')}`,
          bindings,
        );
      }
    });
    if (i % 500_000 < 50_000) process.stderr.write(`  seeded ${label(i)}\n`);
  }
}

// ---- a throwaway Redis for the app's dependencies (no read touches it)

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; stop(): void }> {
  if (args['redis-url']) return { url: args['redis-url'], stop: () => undefined };
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error('redis-server did not start (apt-get install redis-server)');
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

// ---- measuring

interface Figure {
  p50: number;
  p95: number;
}

/** Request times in ms by query name, gathered over all rounds. */
type Samples = Map<string, number[]>;

const percentile = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
const round = (ms: number) => Math.round(ms * 100) / 100;
const iso = (ms: number) => new Date(ms).toISOString();

function figure(times: number[]): Figure {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)) };
}

async function get(url: string): Promise<string> {
  const res = await fetch(url);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${body.slice(0, 200)}`);
  return body;
}

/** Times `iterations` requests of one query (after two unrecorded ones) into samples[name]. */
async function timeRequests(samples: Samples, name: string, url: string, iterations: number): Promise<void> {
  const times = samples.get(name) ?? [];
  samples.set(name, times);
  for (let i = 0; i < iterations + 2; i++) {
    const started = performance.now();
    await get(url);
    if (i >= 2) times.push(performance.now() - started);
  }
}

const LIST_SORTS = ['created_at', 'status', 'category', 'source'].flatMap((by) =>
  ['asc', 'desc'].map((order) => `${by} ${order}`),
);
const LIST_FILTERS: Array<[string, string]> = [
  ['no filter', ''],
  ['status=failed', 'status=failed'],
  ['category=lead', 'category=lead'],
  ['source=crm', 'source=crm'],
  [
    'created in one day',
    `created_after=${iso(START + 9 * DAY + 3_600_000)}&created_before=${iso(START + 10 * DAY + 3_600_000)}`,
  ],
];
const CURSOR_WALKS = [
  ['no filter, created_at desc', 'sort_by=created_at&sort_order=desc'],
  ['status=failed, category asc', 'status=failed&sort_by=category&sort_order=asc'],
  ['source=crm, status desc', 'source=crm&sort_by=status&sort_order=desc'],
] as const;

/** The query 100 pages deep by cursor (or as deep as a small data set goes). */
async function deepCursor(base: string, query: string): Promise<string> {
  let cursor = '';
  for (let page = 1; page <= 100; page++) {
    const res = JSON.parse(await get(`${base}/records?${query}${cursor}`)) as { next_cursor: string | null };
    if (!res.next_cursor) break;
    cursor = `&cursor=${encodeURIComponent(res.next_cursor)}`;
  }
  return cursor;
}

/** One pass over every query type against one size's server. */
async function measureSize(base: string, iterations: number, samples: Samples, cursors: string[]): Promise<void> {
  const time = (name: string, query: string, n = iterations) => timeRequests(samples, name, base + query, n);

  await time('summary', '/reports/summary');
  await time('summary category=invoice', '/reports/summary?category=invoice');
  await time('summary status=failed', '/reports/summary?status=failed');
  // a week with edges that fall inside hours: whole days and hours from the counters, minutes from the records
  const from = START + 5 * DAY + 10 * 3_600_000 + 17 * 60_000 + 23_456;
  const to = START + 12 * DAY + 15 * 3_600_000 + 42 * 60_000 + 10_789;
  await time('summary date range (7 days, ragged edges)', `/reports/summary?date_from=${iso(from)}&date_to=${iso(to)}`);

  for (const [name, filter] of LIST_FILTERS) {
    for (const sort of LIST_SORTS) {
      const [sortBy, order] = sort.split(' ');
      await time(
        `list first page, ${name}: ${sort}`,
        `/records?${filter}${filter ? '&' : ''}sort_by=${sortBy}&sort_order=${order}`,
        Math.ceil(iterations / 2),
      );
    }
  }

  for (const [i, [name, query]] of CURSOR_WALKS.entries()) {
    await time(`list page 101 by cursor, ${name}`, `/records?${query}${cursors[i]}`);
    await time(`list page 1, ${name}`, `/records?${query}`);
  }

  await time(
    'timeseries hour, 7 days',
    `/reports/timeseries?bucket=hour&date_from=${iso(START + 7 * DAY).slice(0, 10)}&date_to=${iso(START + 13 * DAY).slice(0, 10)}`,
  );
  await time('timeseries day, all 3 weeks', '/reports/timeseries?bucket=day');
  await time(
    'timeseries minute, 6 hours',
    `/reports/timeseries?bucket=minute&date_from=${iso(START + 8 * DAY)}&date_to=${iso(START + 8 * DAY + 6 * 3_600_000 - 1)}`,
  );
}

interface QueryResult extends Figure {
  detail?: Record<string, Figure>;
}

/** p50/p95 per query; the eight sorts of each list filter folded into their worst p50, with the detail kept. */
function summarise(samples: Samples): Record<string, QueryResult> {
  const out: Record<string, QueryResult> = {};
  for (const [name, times] of samples) {
    const group = /^(list first page, .+): (\S+ (?:asc|desc))$/.exec(name);
    if (!group) {
      out[name] = figure(times);
      continue;
    }
    const key = `${group[1]}: worst of 4 sorts × 2 orders`;
    const detail = (out[key]?.detail ?? {}) as Record<string, Figure>;
    detail[group[2]!] = figure(times);
    const worst = Object.values(detail).reduce((w, f) => (f.p50 > w.p50 ? f : w));
    out[key] = { ...worst, detail };
  }
  return out;
}

const TARGETS: Record<string, string> = {
  summary: 'p50 ≤ 20 ms at 1M; 5M ≤ 1.5 × 1M',
  'summary category=invoice': 'p50 ≤ 20 ms at 1M; 5M ≤ 1.5 × 1M',
  'summary status=failed': 'p50 ≤ 20 ms at 1M; 5M ≤ 1.5 × 1M',
  'summary date range (7 days, ragged edges)': 'p50 ≤ 30 ms at 1M',
  'timeseries hour, 7 days': 'p50 ≤ 30 ms at 1M',
};

function quietLogger() {
  return bunyan.createLogger({ name: 'bench', level: 'fatal' });
}

/** Seeds (or reuses) one size's database and serves it through the app on a local port. */
async function prepareSize(n: number, redisUrl: string) {
  const file = args.reuse ?? path.join(args.dir!, `bench-reports-${process.pid}-${label(n)}.db`);
  const url = `sqlite:${file}`;
  let seedMs = 0;
  let rebuildMs = 0;
  if (!args.reuse) {
    const seeding = createDatabase(url);
    await seeding.migrate();
    // seeding only: a bigger page cache, no fsync; the measurements use the service's own settings
    await seeding.knex.raw('PRAGMA cache_size = -262144');
    await seeding.knex.raw('PRAGMA synchronous = OFF');
    let started = performance.now();
    await seedRecords(seeding.knex, n);
    seedMs = performance.now() - started;
    started = performance.now();
    await rebuildReportCounts(seeding.knex);
    rebuildMs = performance.now() - started;
    await seeding.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)');
    await seeding.close();
  }
  const bytes = fs.statSync(file).size;
  process.stderr.write(
    `  ${label(n)}: seeded in ${(seedMs / 1000).toFixed(1)} s, counters built in ${(rebuildMs / 1000).toFixed(1)} s, ${(bytes / 1e9).toFixed(2)} GB\n`,
  );

  const logger = quietLogger();
  const config = loadConfig({ DATABASE_URL: url, REDIS_URL: redisUrl, QUEUE_PREFIX: `bench-${process.pid}-${n}` });
  const db = createDatabase(url);
  const redis = createRedisConnection(redisUrl, 'producer', logger);
  const queue = createProcessingQueue(redis, { prefix: config.queuePrefix, maxAttempts: 1, retryBackoffMs: 1 });
  const app = createApp({ config, logger, db, queue, redis, version: { version: 'bench', commit: 'bench' } });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    records: n,
    seed_ms: Math.round(seedMs),
    counters_build_ms: Math.round(rebuildMs),
    db_bytes: bytes,
    base,
    samples: new Map() as Samples,
    cursors: [] as string[],
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await queue.close();
      redis.disconnect();
      await db.close();
      if (!args.keep && !args.reuse)
        for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
    },
  };
}

type Size = Awaited<ReturnType<typeof prepareSize>>;

/**
 * Every size is seeded and served first; then ROUNDS rounds each time every size in turn (the order rotating
 * from round to round), so load that drifts during the run falls on all sizes alike.
 */
async function measureAll(sizes: Size[]): Promise<void> {
  for (const size of sizes) {
    size.cursors = await Promise.all(CURSOR_WALKS.map(([, query]) => deepCursor(size.base, query)));
    // one short unrecorded pass: page cache and process warm for every size alike
    await measureSize(size.base, 2, new Map(), size.cursors);
  }
  const perRound = Math.ceil(ITERATIONS / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < sizes.length; k++) {
      const size = sizes[(r + k) % sizes.length]!;
      await measureSize(size.base, perRound, size.samples, size.cursors);
    }
    process.stderr.write(`  round ${r + 1}/${ROUNDS} measured\n`);
  }
}

interface SizeResult {
  records: number;
  queries: Record<string, QueryResult>;
}

function printTable(results: SizeResult[]) {
  const names = Object.keys(results[0]!.queries);
  const header = ['query', ...results.map((r) => `${label(r.records)} p50 / p95 ms`), 'target'];
  const rows = names.map((name) => [
    name,
    ...results.map((r) => `${r.queries[name]!.p50.toFixed(1)} / ${r.queries[name]!.p95.toFixed(1)}`),
    TARGETS[name] ?? (name.startsWith('list') ? 'p50 ≤ 10 ms at 1M; page 101 ≈ page 1' : ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  if (results.length > 1) {
    // the growth target: the largest size against the one before it
    const [smaller, larger] = results.slice(-2) as [SizeResult, SizeResult];
    const ratios = ['summary', 'summary category=invoice', 'summary status=failed'].map(
      (name) => `${name} ${(larger.queries[name]!.p50 / smaller.queries[name]!.p50).toFixed(2)}×`,
    );
    console.log(`\np50 at ${label(larger.records)} / ${label(smaller.records)}: ${ratios.join(', ')}`);
  }
}

async function main() {
  const sizes = args.sizes!.split(',').map(parseSize);
  const redis = await startRedis();
  const machine = {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gb: Math.round(os.totalmem() / 1e9),
    node: process.version,
    database: 'SQLite (sqlite3 driver), WAL, the service defaults',
    load_average_at_start: os.loadavg().map((l) => round(l)),
  };
  const prepared: Size[] = [];
  try {
    for (const n of sizes) prepared.push(await prepareSize(n, redis.url));
    await measureAll(prepared);
  } finally {
    for (const size of prepared) await size.close();
    redis.stop();
  }
  const results = prepared.map(({ records, seed_ms, counters_build_ms, db_bytes, samples }) => ({
    records,
    seed_ms,
    counters_build_ms,
    db_bytes,
    queries: summarise(samples),
  }));
  printTable(results);
  const report = {
    generated_at: new Date().toISOString(),
    command: `npm run bench:reports -- --sizes ${args.sizes} --iterations ${ITERATIONS} --rounds ${ROUNDS}`,
    machine: { ...machine, load_average_at_end: os.loadavg().map((l) => round(l)) },
    sizes: results,
  };
  fs.writeFileSync(args.out!, `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `\nload average: ${machine.load_average_at_start.join(' ')} at start, ${report.machine.load_average_at_end.join(' ')} at end; written to ${args.out}`,
  );
}

await main();
