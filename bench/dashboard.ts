/**
 * npm run bench:dashboard [-- --records 1m --iterations 30 --dir /tmp]
 *
 * The dashboard and the operator endpoints at scale, on SQLite: a fresh database in --dir,
 * migrated, seeded with --records records over the last seven days up to now (6 categories,
 * 3 sources; 88% processed, 7% failed with one of 12 error texts, 5% pending; latencies
 * log-normal around 800 ms), served by the Koa app on a local port with a throwaway Redis.
 *
 * Seeding writes the records table directly with multi-row INSERTs in large transactions
 * (no history rows), then builds the report counters with rebuildReportCounts, which
 * replays every record through the write paths' own deltas.
 *
 * Measured, and printed as JSON:
 * - the page's transfer size: /dashboard and its two assets as a browser fetches them (brotli);
 * - time to first chart: Chromium (/usr/bin/chromium, headless) opens /dashboard on its default
 *   range (the last hour); from the start of navigation until both charts have drawn and
 *   the totals are shown, median of 5 fresh page loads;
 * - p50 of each new endpoint, one request at a time over keep-alive, after two warm-ups.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import bunyan from 'bunyan';
import { chromium } from 'playwright-core';
import { v7 as uuidv7 } from 'uuid';
import { createApp } from '../api/app.js';
import { buildDashboard } from '../bin/build-dashboard.js';
import {
  createDatabase,
  createProcessingQueue,
  createRedisConnection,
  loadConfig,
  rebuildReportCounts,
} from '../shared/index.js';
import { multiRowInsertSql } from '../shared/db/sql.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1m' },
    iterations: { type: 'string', default: '30' },
    dir: { type: 'string', default: os.tmpdir() },
  },
});

const N = Math.round(Number(args.records!.replace(/m$/i, 'e6').replace(/k$/i, 'e3')));
const ITERATIONS = Number(args.iterations);
const DAY = 86_400_000;
const END = Date.now();
const START = END - 7 * DAY;
const CATEGORIES = ['order', 'invoice', 'lead', 'ticket', 'refund', 'signup'];
const SOURCES = ['web', 'api', 'crm'];
const ERRORS = Array.from({ length: 12 }, (_, i) => `upstream ${400 + i}: request refused, "code ${i}"`);
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

async function seed(knex: ReturnType<typeof createDatabase>['knex']): Promise<void> {
  const random = prng(7);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  let i = 0;
  while (i < N) {
    await knex.transaction(async (trx) => {
      for (let t = 0; t < 50 && i < N; t++) {
        const rows = Math.min(1000, N - i);
        const bindings: Array<string | number | null> = [];
        for (let r = 0; r < rows; r++, i++) {
          const created = START + Math.floor((i * (END - START)) / N);
          const u = random();
          const status = u < 0.05 ? 'pending' : u < 0.12 ? 'failed' : 'processed';
          const latency = Math.round(Math.exp(Math.log(800) + gauss()));
          const processedAt = status === 'pending' ? null : Math.min(created + latency, END);
          bindings.push(
            uuidv7({ msecs: created }),
            SOURCES[Math.floor(random() * SOURCES.length)]!,
            CATEGORIES[Math.floor(random() * CATEGORIES.length)]!,
            JSON.stringify({ ref: `R-${i}`, amount: Math.round(random() * 1000) }),
            status,
            status === 'processed' ? JSON.stringify({ ok: true }) : null,
            status === 'failed' ? ERRORS[Math.floor(random() * random() * ERRORS.length)]! : null,
            status === 'pending' ? 0 : 1,
            0,
            null,
            null,
            created,
            processedAt ?? created,
            processedAt,
          );
        }
        await trx.raw(multiRowInsertSql('records', COLUMNS, rows), bindings);
      }
    });
  }
  await rebuildReportCounts(knex);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1]!;
const round = (ms: number) => Math.round(ms * 10) / 10;

async function p50(url: string, init?: RequestInit): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ITERATIONS + 2; i++) {
    const started = performance.now();
    const res = await fetch(url, init);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    if (i >= 2) times.push(performance.now() - started);
  }
  return round(median(times));
}

async function main(): Promise<void> {
  const file = path.join(args.dir!, `dashboard-bench-${process.pid}.db`);
  const redis = await startRedisServer();
  const config = loadConfig({
    DATABASE_URL: `sqlite:${file}`,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: `bench-${process.pid}`,
  });
  const logger = bunyan.createLogger({ name: 'bench', level: 'fatal' });
  const db = createDatabase(config.databaseUrl, { logger });
  const connection = createRedisConnection(config.redisUrl, 'producer', logger);
  const queue = createProcessingQueue(connection, {
    prefix: config.queuePrefix,
    maxAttempts: config.maxAttempts,
    retryBackoffMs: config.retryBackoffMs,
  });
  try {
    await db.migrate();
    let started = performance.now();
    await seed(db.knex);
    const seedSeconds = round((performance.now() - started) / 1000);
    process.stderr.write(`seeded ${N} records in ${seedSeconds} s\n`);
    await buildDashboard();

    const app = createApp({ config, logger, db, queue, redis: connection, version: { version: 'bench', commit: '' } });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // what a browser downloads for the page, with brotli: the bodies' bytes as sent
    let transfer = 0;
    for (const asset of ['/dashboard', '/dashboard/app.js', '/dashboard/app.css']) {
      transfer += await new Promise<number>((resolve, reject) => {
        http
          .get(base + asset, { headers: { 'Accept-Encoding': 'br, gzip' } }, (res) => {
            let bytes = 0;
            res.on('data', (chunk: Buffer) => (bytes += chunk.length));
            res.on('end', () => resolve(bytes));
          })
          .on('error', reject);
      });
    }

    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    });
    const firstChart: number[] = [];
    for (let i = 0; i < 5; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${base}/dashboard`);
      await page.waitForFunction(
        () =>
          document.querySelectorAll('.chart canvas').length === 2 &&
          document.querySelector('[data-total="all"]')?.textContent !== '',
        undefined,
        { timeout: 60_000 },
      );
      firstChart.push(await page.evaluate(() => performance.now()));
      await page.close();
    }
    await browser.close();

    const iso = (ms: number) => new Date(ms).toISOString();
    const hour = `date_from=${iso(END - 3_600_000)}&date_to=${iso(END)}`;
    const week = `date_from=${iso(START)}&date_to=${iso(END)}`;
    const endpoints: Record<string, number> = {
      'GET /reports/failures': await p50(`${base}/reports/failures`),
      'GET /reports/failures?category=order': await p50(`${base}/reports/failures?category=order`),
      'GET /reports/latency (minute, last hour)': await p50(`${base}/reports/latency?bucket=minute&${hour}`),
      'GET /reports/latency (hour, last week)': await p50(`${base}/reports/latency?bucket=hour&${week}`),
      'GET /reports/summary?format=csv': await p50(`${base}/reports/summary?format=csv`),
      'GET /reports/timeseries?format=csv (hour, last week)': await p50(
        `${base}/reports/timeseries?format=csv&bucket=hour&${week}`,
      ),
      'GET /records?format=csv (last hour, ~6,000 rows)': await p50(
        `${base}/records?format=csv&created_after=${iso(END - 3_600_000)}`,
      ),
    };
    // each bulk retry moves 100 more failed records: a different set every time
    endpoints['POST /records/retry (limit 100)'] = await p50(`${base}/records/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filter: { category: 'invoice' }, limit: 100 }),
    });
    started = performance.now();
    const full = await fetch(`${base}/records?format=csv&status=failed`);
    const rows = (await full.text()).split('\r\n').length - 2;
    const fullCsvSeconds = round((performance.now() - started) / 1000);

    server.close();
    console.log(
      JSON.stringify(
        {
          records: N,
          seed_seconds: seedSeconds,
          page_transfer_kb_brotli: round(transfer / 1024),
          first_chart_ms_median_of_5: round(median(firstChart)),
          endpoint_p50_ms: endpoints,
          csv_all_failed: { rows, seconds: fullCsvSeconds },
        },
        null,
        2,
      ),
    );
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await connection.quit();
    await db.close();
    await redis.stop();
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(file + suffix, { force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
