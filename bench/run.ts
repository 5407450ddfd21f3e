/**
 * npm run bench [-- --db sqlite|postgres] [-- --workers 1,2,4] [-- --quick]
 *
 * Measures the service against the raw ceiling of its own stack in the same run:
 * ingest against bare Koa + koa-bodyparser + Knex, end to end against bare BullMQ,
 * batch ingest, and process memory; on PostgreSQL, end to end also against pg-boss (send +
 * work in one process on the same database). Ingest and the ceilings run twice and keep their
 * better round; the end-to-end runs also read every process's CPU time per record.
 * Starts its own redis-server and temp database; prints a table and writes
 * bench/results.json.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pgBossCeiling } from './pg-boss-ceiling.js';
import { cpuMs, rssMb } from './proc-stats.js';
import { benchDatabase, load, startService as startBenchService, waitForTerminal, type Service } from './service.js';
import type { ServiceProcess } from '../test/helpers/processes.js';
import { freePort, startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const quick = args.includes('--quick');
const dbKind = flag('db', 'sqlite');
const workerCounts = flag('workers', '1')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const CONNECTIONS = 50;
// WORKER_CONCURRENCY for our worker (the README's advice for the default processor) and the raw BullMQ worker alike
const CONCURRENCY = 256;
const INGEST_SECONDS = quick ? 4 : 8;
const INGEST_ROUNDS = 2;
const E2E_RECORDS = quick ? 5_000 : 20_000;
const BATCH_RECORDS = quick ? 20_000 : 100_000;
const LEAK_JOBS = quick ? 40_000 : 200_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const body = (i: number) => ({ source: 'bench', category: `c${i % 8}`, payload: { priority: i % 6, n: i } });
const round = (n: number, digits = 0) => Number(n.toFixed(digits));

/** CPU µs per record that each process spends while `run` moves `records` records. */
async function cpuPerRecord<T>(pids: Record<string, number | undefined>, records: number, run: () => Promise<T>) {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)]));
  const result = await run();
  const perRecord = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, round(((cpuMs(pid) - before[name]!) * 1000) / records)]),
  );
  return { result, perRecord };
}

const cpuSum = (perRecord: Record<string, number>) => Object.values(perRecord).reduce((a, b) => a + b, 0);
const cpuParts = (perRecord: Record<string, number>) =>
  `${Object.entries(perRecord)
    .map(([name, us]) => `${name} ${us}`)
    .join(' + ')} = ${cpuSum(perRecord)}`;

/** Highest RSS seen per process while `run` goes on. */
async function sampleRss<T>(procs: Record<string, ServiceProcess>, run: () => Promise<T>) {
  const peak: Record<string, number> = Object.fromEntries(Object.keys(procs).map((k) => [k, 0]));
  const timer = setInterval(() => {
    for (const [name, p] of Object.entries(procs)) peak[name] = Math.max(peak[name]!, rssMb(p.child.pid));
  }, 200);
  try {
    return { result: await run(), peak };
  } finally {
    clearInterval(timer);
  }
}

const databaseFor = () => benchDatabase(dbKind);

/** The PostgreSQL server the bench uses, without a test schema's search_path. */
const pgBase = () => process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const better = (kept: autocannon.Result | undefined, next: autocannon.Result) =>
  kept && kept.requests.average >= next.requests.average ? kept : next;

/** `records` records as JSON bodies of 1,000 records each, built before any clock starts. */
function batchBodies(records: number): string[] {
  let i = 0;
  return Array.from({ length: Math.ceil(records / 1000) }, () =>
    JSON.stringify({ records: Array.from({ length: Math.min(1000, records - i) }, () => body(i++)) }),
  );
}

/**
 * POSTs the bodies over `connections` connections, each body once.
 */
async function sendBatches(url: string, bodies: string[], connections: number): Promise<void> {
  let next = 0;
  const sender = async () => {
    while (next < bodies.length) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: bodies[next++]!,
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(`batch: ${res.status} ${text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: connections }, sender));
}

const startService = (
  redis: RedisServer,
  workers: number,
  tag: string,
  env: Record<string, string> = {},
  workerNodeArgs: string[] = [],
): Promise<Service> =>
  startBenchService({ redis, workers, tag, env, workerNodeArgs, dbKind, concurrency: CONCURRENCY });

async function ingestCeiling(): Promise<autocannon.Result> {
  const database = await databaseFor();
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'ceiling-server.ts')], {
    env: { ...process.env, PORT: String(port), DATABASE_URL: database.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.includes('listening') && resolve()));
  try {
    return await ingest(`http://127.0.0.1:${port}/records`);
  } finally {
    child.kill();
    await new Promise((r) => child.once('exit', r));
    await database.drop();
  }
}

function ingest(url: string): Promise<autocannon.Result> {
  let i = 0;
  return load({
    url,
    method: 'POST',
    connections: CONNECTIONS,
    duration: INGEST_SECONDS,
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify(body(i++)) }) }],
  });
}

/** The redis-server's pid, from INFO, to read its CPU time. */
async function redisProcessId(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    return Number(/process_id:(\d+)/.exec(await client.info('server'))![1]);
  } finally {
    client.disconnect();
  }
}

/** Raw BullMQ: 50 concurrent producers add N jobs, a separate worker process completes them. */
async function bullmqCeiling(redis: RedisServer, redisPid: number, n: number) {
  const prefix = `raw-${Date.now()}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'raw-bullmq-worker.ts'), redis.url, prefix, String(n), String(CONCURRENCY)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready')) await sleep(20);
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('raw', { connection, prefix, defaultJobOptions: { removeOnComplete: true } });
  await queue.waitUntilReady();
  const started = Date.now();
  let next = 0;
  const producer = async () => {
    while (next < n) {
      const i = next++;
      await queue.add('job', body(i));
    }
  };
  const { perRecord } = await cpuPerRecord(
    { producer: process.pid, worker: child.pid, redis: redisPid },
    n,
    async () => {
      await Promise.all(Array.from({ length: CONNECTIONS }, producer));
      while (!out.includes('done')) await sleep(5);
    },
  );
  const seconds = (Date.now() - started) / 1000;
  child.kill();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return { jobsPerSecond: n / seconds, cpuPerRecord: perRecord };
}

/** Our end to end: N single POST /records?process=true over 50 connections, until all terminal. */
async function endToEnd(redis: RedisServer, redisPid: number, workers: number, n: number) {
  const service = await startService(redis, workers, `e2e${workers}`);
  try {
    const procs: Record<string, ServiceProcess> = Object.fromEntries([
      ['api', service.api],
      ...service.workers.map((w, i) => [`worker${i}`, w]),
    ]);
    const pids = {
      ...Object.fromEntries(Object.entries(procs).map(([name, p]) => [name, p.child.pid])),
      redis: redisPid,
      'load generator': process.pid,
    };
    const started = Date.now();
    let i = 0;
    const { result, peak } = await sampleRss(procs, () =>
      cpuPerRecord(pids, n, async () => {
        const loaded = await load({
          url: `${service.base}/records?process=true`,
          method: 'POST',
          connections: CONNECTIONS,
          amount: n,
          headers: { 'content-type': 'application/json' },
          requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify(body(i++)) }) }],
        });
        if (loaded.non2xx > 0 || loaded.errors > 0)
          throw new Error(`end to end: ${loaded.non2xx} non-2xx, ${loaded.errors} errors`);
        await waitForTerminal(service.database.url, n);
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    return { recordsPerSecond: n / seconds, cpuPerRecord: result.perRecord, peak };
  } finally {
    await service.stop();
  }
}

/** POST /records/batch with 1,000 records a request over 4 connections; with `process`, until all terminal. */
async function batch(redis: RedisServer, n: number, process: boolean) {
  const service = await startService(redis, process ? 1 : 0, process ? 'batchp' : 'batch');
  try {
    const procs = Object.fromEntries([['api', service.api], ...service.workers.map((w, i) => [`worker${i}`, w])]);
    const { result: seconds, peak } = await sampleRss(procs, async () => {
      const bodies = batchBodies(n);
      const started = performance.now();
      await sendBatches(`${service.base}/records/batch${process ? '?process=true' : ''}`, bodies, 4);
      if (process) await waitForTerminal(service.database.url, n);
      return (performance.now() - started) / 1000;
    });
    return { recordsPerSecond: n / seconds, peak };
  } finally {
    await service.stop();
  }
}

/** `--trace-gc`'s line for a full collection: heap used before (committed) -> after (committed), in MB. */
const MARK_COMPACT = /Mark-Compact[^\d]*[\d.]+ \([\d.]+\) -> ([\d.]+) \(/;

/**
 * Worker memory after 20,000 and after 200,000 jobs. RSS also counts the heap V8 has
 * reserved, which goes on growing for a while after start; a leak is what grows the
 * live heap, read from --trace-gc as the heap left after a full collection: the first
 * one past 20,000 jobs and the last one.
 */
async function leakCheck(redis: RedisServer, total: number) {
  const service = await startService(redis, 1, 'leak', {}, ['--trace-gc']);
  const worker = service.workers[0]!;
  const early = total / 10;
  let pastEarly = false;
  let rssEarly = 0;
  let heapEarly: number | null = null;
  let heapAfter: number | null = null;
  let partial = '';
  worker.child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const match = MARK_COMPACT.exec(line);
      if (!match) continue;
      heapAfter = Number(match[1]);
      if (pastEarly) heapEarly ??= heapAfter;
    }
  });
  try {
    const feeding = sendBatches(`${service.base}/records/batch?process=true`, batchBodies(total), 2);
    await waitForTerminal(service.database.url, total, (n) => {
      if (!pastEarly && n >= early) {
        pastEarly = true;
        rssEarly = rssMb(worker.child.pid);
      }
    });
    await feeding;
    return { early, rssEarly, heapEarly, total, rssAfter: rssMb(worker.child.pid), heapAfter };
  } finally {
    await service.stop();
  }
}

const redis = await startRedisServer();
const results: Record<string, unknown> = {
  machine: `${os.cpus().length} cores, ${round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`.trim(),
  node: process.version,
  database: dbKind,
};
const rows: Array<[string, string, string, string]> = [];
try {
  // the ceiling, the service and the service without request lines take turns, and each
  // keeps its better round: interference from the rest of a shared machine only slows a round down
  let ceiling: autocannon.Result | undefined;
  let ours: autocannon.Result | undefined;
  let unlogged: autocannon.Result | undefined;
  let ingestPeakApi = 0;
  for (let turn = 1; turn <= INGEST_ROUNDS; turn++) {
    ceiling = better(ceiling, await ingestCeiling());
    const service = await startService(redis, 0, `ingest${turn}`);
    const { result, peak } = await sampleRss({ api: service.api }, () => ingest(`${service.base}/records`));
    await service.stop();
    ours = better(ours, result);
    ingestPeakApi = Math.max(ingestPeakApi, peak.api ?? 0);
    // the cost of the one log line per request: the same load with request lines off
    const quiet = await startService(redis, 0, `ingest-quiet${turn}`, { LOG_LEVEL: 'warn' });
    unlogged = better(unlogged, await ingest(`${quiet.base}/records`));
    await quiet.stop();
  }
  if (!ceiling || !ours || !unlogged) throw new Error('no ingest round ran');
  const ingestRatio = ours.requests.average / ceiling.requests.average;
  results.ingest = {
    ceiling_rps: round(ceiling.requests.average),
    ceiling_p99_ms: ceiling.latency.p99,
    rps: round(ours.requests.average),
    p99_ms: ours.latency.p99,
    ratio: round(ingestRatio, 2),
    non2xx: ours.non2xx,
    without_request_log_rps: round(unlogged.requests.average),
  };
  rows.push([
    'ingest POST /records (50 conns)',
    `${round(ours.requests.average)} req/s, p99 ${ours.latency.p99} ms`,
    `${round(ceiling.requests.average)} req/s, p99 ${ceiling.latency.p99} ms`,
    `${round(ingestRatio, 2)}×`,
  ]);

  rows.push([
    'ingest without the request log line (LOG_LEVEL=warn)',
    `${round(unlogged.requests.average)} req/s, p99 ${unlogged.latency.p99} ms`,
    '—',
    `log line costs ${round((1 - ours.requests.average / unlogged.requests.average) * 100, 1)}%`,
  ]);

  const redisPid = await redisProcessId(redis.url);
  // raw BullMQ runs before and after our end-to-end runs and keeps its better round, as ingest does
  const rawFirst = await bullmqCeiling(redis, redisPid, E2E_RECORDS);
  const pgBossFirst = dbKind === 'postgres' ? await pgBossCeiling(pgBase(), E2E_RECORDS, CONNECTIONS) : undefined;
  const runs = [];
  for (const w of workerCounts) runs.push({ w, ...(await endToEnd(redis, redisPid, w, E2E_RECORDS)) });
  const rawSecond = await bullmqCeiling(redis, redisPid, E2E_RECORDS);
  const pgBossSecond = dbKind === 'postgres' ? await pgBossCeiling(pgBase(), E2E_RECORDS, CONNECTIONS) : undefined;
  const pgBoss = Math.max(pgBossFirst?.jobsPerSecond ?? 0, pgBossSecond?.jobsPerSecond ?? 0);
  if (pgBoss) results.pg_boss_jobs_per_s = round(pgBoss);
  const { jobsPerSecond: raw, cpuPerRecord: rawCpu } =
    rawFirst.jobsPerSecond >= rawSecond.jobsPerSecond ? rawFirst : rawSecond;
  results.bullmq_ceiling_jobs_per_s = round(raw);
  results.bullmq_ceiling_cpu_us_per_job = rawCpu;
  const e2e: Record<string, unknown> = {};
  let e2ePeak: Record<string, number> = {};
  for (const { w, recordsPerSecond, cpuPerRecord: cpu, peak } of runs) {
    e2e[`workers_${w}`] = {
      records_per_s: round(recordsPerSecond),
      ratio: round(recordsPerSecond / raw, 2),
      ...(pgBoss ? { pg_boss_ratio: round(recordsPerSecond / pgBoss, 2) } : {}),
      cpu_us_per_record: cpu,
    };
    e2ePeak = peak;
    rows.push([
      `end to end, single POSTs, ${w} worker${w > 1 ? 's' : ''} (${E2E_RECORDS} records)`,
      `${round(recordsPerSecond)} records/s`,
      `${round(raw)} jobs/s`,
      `${round(recordsPerSecond / raw, 2)}×`,
    ]);
    if (pgBoss)
      rows.push([
        `  the same against pg-boss (send + work, no HTTP)`,
        `${round(recordsPerSecond)} records/s`,
        `${round(pgBoss)} jobs/s`,
        `${round(recordsPerSecond / pgBoss, 2)}×`,
      ]);
    // on two shared cores, CPU per record bounds the ratio: raw's total over ours
    rows.push([
      `  CPU µs per record, all processes (${w} worker${w > 1 ? 's' : ''})`,
      cpuParts(cpu),
      cpuParts(rawCpu),
      `${round(cpuSum(rawCpu) / cpuSum(cpu), 2)}×`,
    ]);
  }
  results.end_to_end = e2e;

  const plain = await batch(redis, BATCH_RECORDS, false);
  const processed = await batch(redis, BATCH_RECORDS / 2, true);
  results.batch = {
    records_per_s: round(plain.recordsPerSecond),
    with_process_records_per_s: round(processed.recordsPerSecond),
    with_process_ratio: round(processed.recordsPerSecond / raw, 2),
  };
  rows.push(['batch ingest, no processing', `${round(plain.recordsPerSecond)} records/s`, '—', '—']);
  rows.push([
    'batch ingest ?process=true, end to end',
    `${round(processed.recordsPerSecond)} records/s`,
    `${round(raw)} jobs/s`,
    `${round(processed.recordsPerSecond / raw, 2)}×`,
  ]);

  const leak = await leakCheck(redis, LEAK_JOBS);
  results.memory = {
    api_peak_rss_mb_ingest: round(ingestPeakApi),
    peak_rss_mb_end_to_end: Object.fromEntries(Object.entries(e2ePeak).map(([k, v]) => [k, round(v)])),
    peak_rss_mb_batch_process: Object.fromEntries(Object.entries(processed.peak).map(([k, v]) => [k, round(v)])),
    worker_rss_mb_after: { [leak.early]: round(leak.rssEarly), [leak.total]: round(leak.rssAfter) },
    worker_growth_pct: round(((leak.rssAfter - leak.rssEarly) / leak.rssEarly) * 100, 1),
    worker_live_heap_mb_after: { [leak.early]: leak.heapEarly, [leak.total]: leak.heapAfter },
  };
  const peakApi = Math.max(ingestPeakApi, e2ePeak.api ?? 0, processed.peak.api ?? 0);
  const peakWorker = Math.max(
    ...Object.entries({ ...e2ePeak, ...processed.peak })
      .filter(([k]) => k !== 'api')
      .map(([, v]) => v),
  );
  rows.push(['peak RSS under load: api / worker', `${round(peakApi)} MB / ${round(peakWorker)} MB`, '—', '—']);
  rows.push([
    `worker RSS after ${leak.early} / ${leak.total} jobs`,
    `${round(leak.rssEarly)} MB / ${round(leak.rssAfter)} MB (${round(((leak.rssAfter - leak.rssEarly) / leak.rssEarly) * 100, 1)}%)`,
    '—',
    '—',
  ]);
  rows.push([
    `worker live heap after a full GC, past ${leak.early} / at ${leak.total} jobs`,
    `${leak.heapEarly ?? '(none)'} MB / ${leak.heapAfter ?? '(none)'} MB`,
    '—',
    '—',
  ]);
} finally {
  await redis.stop();
}

const header: [string, string, string, string] = ['figure', 'this service', 'raw ceiling (same run)', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\n${results.machine}, Node ${process.version}, ${dbKind}\n`);
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));
results.table = rows;
fs.writeFileSync(path.join(here, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('\nwritten to bench/results.json');
