/**
 * npx tsx bench/reconciler.ts [--sizes 100k,1m] [--passes 3] [--database-url postgres://…]
 *
 * What one reconciler pass costs with a large backlog in which nothing is lost: for each
 * size N, N pending records whose intent to process is stored and older than one reconcile
 * interval, each with its job waiting in Redis. Then `reconcileLostJobs()` runs --passes
 * times and each pass is measured: wall time; CPU time of this process and of redis-server
 * (wall time swings with other load on a shared machine, CPU time much less); SQL queries,
 * the time they took and the rows they returned (knex's query events on the writer and the
 * reader); and the Redis commands the server executed (INFO commandstats before and after,
 * so commands run by Lua scripts count too). PostgreSQL's own CPU time is not read. Prints
 * the medians as a table and writes bench/reconciler-results.json.
 *
 * The records are seeded as the service leaves them once their jobs are added (enqueued_at
 * set). A reconciler that finds no state of its own in Redis first audits every queued
 * record, a bounded number per pass: those passes run first, until the audit says it
 * finished, and are reported apart (the audit's cost per pass and per page of 500); the
 * --passes steady passes come after.
 *
 * It starts its own redis-server; each size gets a fresh database: a temp SQLite file, or
 * with --database-url a fresh schema in that PostgreSQL database, dropped at the end. It
 * reaches the code only through startReconciler and the shared database and queue
 * factories, so it measures the reconciler before and after a rewrite alike.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Queue } from 'bullmq';
import bunyan from 'bunyan';
import knexFactory from 'knex';
import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import {
  createDatabase,
  createProcessingQueue,
  createRedisConnection,
  jobIdFor,
  PROCESS_JOB,
  type Database,
  type ProcessJobData,
} from '../shared/index.js';
import { startReconciler } from '../worker/reconciler.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100k,1m' },
    passes: { type: 'string', default: '3' },
    'database-url': { type: 'string' },
  },
});

const here = path.dirname(fileURLToPath(import.meta.url));
const PASSES = Number(args.passes);
// long enough that the reconciler's own timer never fires while a size is measured;
// the seeded intents are older than one such interval, so every record is a candidate
const INTERVAL_MS = 3_600_000;
const QUEUE_PREFIX = 'benchrec';
const SQL_ROWS_PER_INSERT = 1000;
const SQL_ROWS_PER_TRANSACTION = 100_000;
const JOBS_PER_ADD_BULK = 1000;

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, k: 1e3, m: 1e6 }[m[2]!.toLowerCase() as '' | 'k' | 'm']);
}
const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
const sizes = args.sizes.split(',').map(parseSize);

interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A temp SQLite file, or a fresh schema in the PostgreSQL database at `base`. */
async function freshDatabase(base: string | undefined, n: number): Promise<BenchDatabase> {
  if (!base) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-reconciler-'));
    return {
      url: `sqlite:${path.join(dir, 'bench.db')}`,
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const schema = `bench_reconciler_${process.pid}_${n}`;
  const admin = knexFactory({ client: 'pg', connection: base });
  try {
    await admin.raw('create schema ??', [schema]);
  } finally {
    await admin.destroy();
  }
  const separator = base.includes('?') ? '&' : '?';
  return {
    url: `${base}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: async () => {
      const dropper = knexFactory({ client: 'pg', connection: base });
      try {
        await dropper.raw('drop schema ?? cascade', [schema]);
      } finally {
        await dropper.destroy();
      }
    },
  };
}

const RECORD_COLUMNS = [
  'id',
  'source',
  'category',
  'payload',
  'status',
  'queue_seq',
  'queued_at',
  'queued_request_id',
  'enqueued_at',
  'created_at',
  'updated_at',
];

/**
 * N pending records queued once (queue_seq 1) before the cutoff of the first pass, written
 * straight into the table. The report counters are left empty: the reconciler never reads them.
 */
async function seedRecords(db: Database, ids: readonly string[]): Promise<void> {
  const queuedAt = Date.now() - INTERVAL_MS - 60_000;
  const placeholders = `(${RECORD_COLUMNS.map(() => '?').join(',')})`;
  for (let start = 0; start < ids.length; start += SQL_ROWS_PER_TRANSACTION) {
    const end = Math.min(start + SQL_ROWS_PER_TRANSACTION, ids.length);
    await db.knex.transaction(async (trx) => {
      for (let i = start; i < end; i += SQL_ROWS_PER_INSERT) {
        const rows = Math.min(SQL_ROWS_PER_INSERT, end - i);
        const bindings: Array<string | number | null> = [];
        for (let r = i; r < i + rows; r++) {
          const payload = JSON.stringify({ priority: r % 6 });
          const row = [ids[r]!, `s${r % 4}`, `c${r % 8}`, payload, 'pending', 1, queuedAt, null, queuedAt];
          bindings.push(...row, queuedAt, queuedAt);
        }
        await trx.raw(
          `INSERT INTO records (${RECORD_COLUMNS.join(',')}) VALUES ${new Array(rows).fill(placeholders).join(',')}`,
          bindings,
        );
      }
    });
  }
  // a live database would have been analyzed by autovacuum long before a backlog this size
  if (db.dialect === 'postgres') await db.knex.raw('ANALYZE records');
}

/** The waiting job of each record, added as the service adds it (same queue, name, id and data). */
async function seedJobs(queue: Queue<ProcessJobData>, ids: readonly string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += JOBS_PER_ADD_BULK) {
    await queue.addBulk(
      ids.slice(i, i + JOBS_PER_ADD_BULK).map((recordId) => {
        const data: ProcessJobData = { recordId, seq: 1, requestId: null };
        return { name: PROCESS_JOB, data, opts: { jobId: jobIdFor(recordId, 1) } };
      }),
    );
  }
}

/** Calls per command from INFO commandstats (without INFO itself, the bench's own reads) and CPU time so far. */
async function redisReading(admin: Redis): Promise<{ calls: Map<string, number>; cpuMs: number }> {
  const calls = new Map<string, number>();
  for (const m of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info') calls.set(m[1]!, Number(m[2]));
  }
  const cpu = await admin.info('cpu');
  const seconds = (field: string) => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(cpu)![1]);
  return { calls, cpuMs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000 };
}

const cpuMsSoFar = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** What knex's query events carry about the query (the uid pairs a response with its query). */
interface KnexQuery {
  __knexQueryUid: string;
}

function rowsIn(response: unknown): number {
  if (Array.isArray(response)) return response.length;
  const rows = (response as { rows?: unknown } | null)?.rows;
  return Array.isArray(rows) ? rows.length : 0;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface Pass {
  ms: number;
  /** time between sending each query and its response, summed (queries run one after another) */
  sqlMs: number;
  sqlQueries: number;
  sqlRows: number;
  /** CPU time of this process, all threads (on SQLite the queries run in libuv's threads here) */
  benchCpuMs: number;
  redisCpuMs: number;
  redisCommands: number;
  redisByCommand: Record<string, number>;
  requeued: number;
}

interface SizeResult {
  size: number;
  seedRecordsMs: number;
  seedJobsMs: number;
  redisUsedMemoryMb: number;
  passes: Pass[];
  median: Omit<Pass, 'redisByCommand'>;
  /** the first passes, until the audit of every queued record finished */
  audit: { passes: Pass[]; totalMs: number; median: Omit<Pass, 'redisByCommand'> };
}

const medianOf = (passes: Pass[]): Omit<Pass, 'redisByCommand'> => ({
  ms: median(passes.map((p) => p.ms)),
  sqlMs: median(passes.map((p) => p.sqlMs)),
  sqlQueries: median(passes.map((p) => p.sqlQueries)),
  sqlRows: median(passes.map((p) => p.sqlRows)),
  benchCpuMs: median(passes.map((p) => p.benchCpuMs)),
  redisCpuMs: median(passes.map((p) => p.redisCpuMs)),
  redisCommands: median(passes.map((p) => p.redisCommands)),
  requeued: median(passes.map((p) => p.requeued)),
});

async function measureSize(n: number, redisUrl: string, admin: Redis): Promise<SizeResult> {
  // kept in memory: the bench reads when the audit finished
  const messages: string[] = [];
  const logger = bunyan.createLogger({
    name: 'bench-reconciler',
    streams: [
      {
        type: 'raw',
        level: 'info',
        stream: { write: (rec: object) => void messages.push((rec as { msg: string }).msg) },
      },
    ],
  });
  const target = await freshDatabase(args['database-url'], n);
  const db = createDatabase(target.url);
  const connection = createRedisConnection(redisUrl, 'worker', logger);
  const queue = createProcessingQueue(connection, { prefix: QUEUE_PREFIX, maxAttempts: 5, retryBackoffMs: 1000 });
  try {
    await db.migrate();
    const ids = Array.from({ length: n }, () => uuidv7());
    let started = performance.now();
    await seedRecords(db, ids);
    const seedRecordsMs = performance.now() - started;
    started = performance.now();
    await seedJobs(queue, ids);
    const seedJobsMs = performance.now() - started;
    const { waiting } = await queue.getJobCounts('waiting');
    if (waiting !== n) throw new Error(`seeded ${waiting} waiting jobs, expected ${n}`);
    const usedMemory = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
    console.error(
      `${label(n)}: seeded records in ${(seedRecordsMs / 1000).toFixed(1)} s, jobs in ${(seedJobsMs / 1000).toFixed(1)} s; ` +
        `redis used_memory ${(usedMemory / 2 ** 20).toFixed(0)} MB`,
    );

    const sql = { queries: 0, rows: 0, ms: 0 };
    const sentAt = new Map<string, number>();
    for (const knex of new Set([db.knex, db.reader])) {
      knex.on('query', (q: KnexQuery) => {
        sql.queries++;
        sentAt.set(q.__knexQueryUid, performance.now());
      });
      knex.on('query-response', (response: unknown, q: KnexQuery) => {
        sql.rows += rowsIn(response);
        sql.ms += performance.now() - (sentAt.get(q.__knexQueryUid) ?? performance.now());
        sentAt.delete(q.__knexQueryUid);
      });
      knex.on('query-error', (_err: unknown, q: KnexQuery) => sentAt.delete(q.__knexQueryUid));
    }
    const reconciler = startReconciler({ db, queue, connection, logger, intervalMs: INTERVAL_MS });
    const passes: Pass[] = [];
    const auditPasses: Pass[] = [];
    const auditFinished = () => messages.includes('audit of queued records finished');
    try {
      for (let p = 0; !auditFinished() || p < auditPasses.length + PASSES; p++) {
        if (p > n / 100 + 10) throw new Error('the audit did not finish');
        const phase = auditFinished() ? passes : auditPasses;
        // a reconciler that never released its lock would otherwise find it taken
        await admin.del(`${queue.qualifiedName}:reconcile-lock`);
        sql.queries = 0;
        sql.rows = 0;
        sql.ms = 0;
        const before = await redisReading(admin);
        const cpuBefore = cpuMsSoFar();
        started = performance.now();
        const requeued = await reconciler.reconcileLostJobs();
        const ms = performance.now() - started;
        const benchCpuMs = cpuMsSoFar() - cpuBefore;
        const after = await redisReading(admin);
        const redisByCommand: Record<string, number> = {};
        for (const [command, calls] of after.calls) {
          const delta = calls - (before.calls.get(command) ?? 0);
          if (delta > 0) redisByCommand[command] = delta;
        }
        const redisCpuMs = after.cpuMs - before.cpuMs;
        const redisCommands = Object.values(redisByCommand).reduce((s, c) => s + c, 0);
        phase.push({
          ms,
          sqlMs: sql.ms,
          sqlQueries: sql.queries,
          sqlRows: sql.rows,
          benchCpuMs,
          redisCpuMs,
          redisCommands,
          redisByCommand,
          requeued,
        });
        console.error(
          `${label(n)} ${phase === auditPasses ? 'audit ' : ''}pass ${p + 1}: ${ms.toFixed(0)} ms (${sql.ms.toFixed(0)} in SQL), ${sql.queries} queries, ${sql.rows} rows, ` +
            `CPU ${benchCpuMs.toFixed(0)} ms here + ${redisCpuMs.toFixed(0)} ms redis, ${redisCommands} redis commands ${JSON.stringify(redisByCommand)}, requeued ${requeued}`,
        );
      }
    } finally {
      await reconciler.stop();
    }
    return {
      size: n,
      seedRecordsMs,
      seedJobsMs,
      redisUsedMemoryMb: usedMemory / 2 ** 20,
      passes,
      median: medianOf(passes),
      audit: {
        passes: auditPasses,
        totalMs: auditPasses.reduce((sum, p) => sum + p.ms, 0),
        median: medianOf(auditPasses),
      },
    };
  } finally {
    await queue.close();
    connection.disconnect();
    await db.close();
    await target.drop();
    await admin.flushall();
  }
}

const redis = await startRedisServer();
const admin = new Redis(redis.url);
const results: SizeResult[] = [];
try {
  for (const n of sizes) results.push(await measureSize(n, redis.url, admin));
} finally {
  admin.disconnect();
  await redis.stop();
}

const database = args['database-url'] ? 'postgres' : 'sqlite';
const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`;
const header = [
  'records',
  'ms per pass',
  'ms in SQL',
  'bench CPU ms',
  'Redis CPU ms',
  'SQL queries',
  'rows read',
  'Redis commands',
  'requeued',
];
const rows = results.map(({ size, median: m }) => [
  label(size),
  m.ms.toFixed(0),
  m.sqlMs.toFixed(0),
  m.benchCpuMs.toFixed(0),
  m.redisCpuMs.toFixed(0),
  String(m.sqlQueries),
  String(m.sqlRows),
  String(m.redisCommands),
  String(m.requeued),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
console.log(`\nreconciler pass, median of ${PASSES}; ${machine.trim()}, Node ${process.version}, ${database}\n`);
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));

// the audit, per pass and per page of 500 (the passes that read a full budget)
const auditHeader = [
  'records',
  'audit passes',
  'audit s',
  'ms per pass',
  'SQL queries',
  'rows read',
  'Redis commands',
  'ms per 500',
];
const auditRows = results.map(({ size, audit }) => {
  const pages = audit.median.sqlRows / 500;
  return [
    label(size),
    String(audit.passes.length),
    (audit.totalMs / 1000).toFixed(1),
    audit.median.ms.toFixed(0),
    String(audit.median.sqlQueries),
    String(audit.median.sqlRows),
    String(audit.median.redisCommands),
    pages > 0 ? (audit.median.ms / pages).toFixed(1) : '—',
  ];
});
const auditWidths = auditHeader.map((h, i) => Math.max(h.length, ...auditRows.map((r) => r[i]!.length)));
const auditLine = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(auditWidths[i]!)).join(' | ')} |`;
console.log('\naudit of every queued record (the first passes), median per pass\n');
console.log(auditLine(auditHeader));
console.log(auditLine(auditWidths.map((w) => '-'.repeat(w))));
for (const r of auditRows) console.log(auditLine(r));
fs.writeFileSync(
  path.join(here, 'reconciler-results.json'),
  `${JSON.stringify({ date: new Date().toISOString(), machine: machine.trim(), node: process.version, database, passes: PASSES, results }, null, 2)}\n`,
);
console.log('\nwritten to bench/reconciler-results.json');
