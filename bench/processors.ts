/**
 * npm run bench:processors [-- --records N] [-- --db sqlite|postgres]
 *
 * End to end with each kind of processor, in one run on the same machine: N single
 * POST /records?process=true over 50 connections, until every record is terminal, with
 * one category processed by the built-in rule, by a module processor, and by an HTTP
 * processor on loopback (a minimal Node server in its own process, answering at once).
 * Reports records/s and created → terminal latency percentiles, and the mean time a
 * processor run took (the worker's workflow_processor_duration_seconds) under that load and
 * then with one record at a time; the HTTP round trip's extra latency per record is its
 * one-at-a-time mean less the module's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { load, startService, waitForTerminal } from './service.js';
import { freePort, startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const RECORDS = Number(flag('records', '10000'));
const DB_KIND = flag('db', 'sqlite');
const CONNECTIONS = 50;
const ALONE_RECORDS = 300;
const CONCURRENCY = 256;
const KINDS = ['builtin', 'module', 'http'] as const;
type Kind = (typeof KINDS)[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, digits = 0) => Number(n.toFixed(digits));

const MODULE = `export default (record) => ({ classification: 'module', n: record.payload.n });\n`;
// the HTTP processor's work is as small as the module's: the difference is the round trip
const SERVER = `
const http = require('node:http');
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const { record } = JSON.parse(body);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ classification: 'http', n: record.payload.n }));
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
`;

async function startProcessorServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', SERVER], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.includes('listening') && resolve()));
  return child;
}

/** sum and count of the worker's processor run durations for one kind */
async function processorSeconds(metricsPort: number, kind: Kind): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes(`processor="${kind}"`))
      .reduce((total, l) => total + Number(l.split(' ').pop()), 0);
  return {
    sum: value('workflow_processor_duration_seconds_sum'),
    count: value('workflow_processor_duration_seconds_count'),
  };
}

interface KindResult {
  recordsPerSecond: number;
  /** under the throughput run's load: up to WORKER_CONCURRENCY runs share the worker's event loop */
  processorMeanMs: number;
  /** one record at a time: what a single run costs */
  processorAloneMs: number;
  latencyMs: { p50: number; p95: number; p99: number };
}

async function run(redis: RedisServer, kind: Kind, dir: string, processorUrl: string): Promise<KindResult> {
  const processor =
    kind === 'builtin'
      ? 'builtin'
      : kind === 'module'
        ? `{ module: ${path.join(dir, 'processor.mjs')} }`
        : `{ http: { url: "${processorUrl}" } }`;
  const file = path.join(dir, `${kind}.yaml`);
  fs.writeFileSync(file, `categories:\n  bench:\n    processor: ${processor}\n`);
  const service = await startService({
    redis,
    workers: 1,
    tag: kind,
    dbKind: DB_KIND,
    concurrency: CONCURRENCY,
    env: { CATEGORIES_FILE: file },
  });
  try {
    const started = Date.now();
    let i = 0;
    const loaded = await load({
      url: `${service.base}/records?process=true`,
      method: 'POST',
      connections: CONNECTIONS,
      amount: RECORDS,
      headers: { 'content-type': 'application/json' },
      requests: [
        {
          setupRequest: (req) => ({
            ...req,
            body: JSON.stringify({ source: 'bench', category: 'bench', payload: { priority: i % 6, n: i++ } }),
          }),
        },
      ],
    });
    if (loaded.non2xx > 0 || loaded.errors > 0)
      throw new Error(`${kind}: ${loaded.non2xx} non-2xx, ${loaded.errors} errors`);
    await waitForTerminal(service.database.url, RECORDS);
    const seconds = (Date.now() - started) / 1000;
    const summary = (await (await fetch(`${service.base}/reports/summary`)).json()) as {
      totals: { processed: number };
      latency_ms: { p50: number; p95: number; p99: number };
    };
    if (summary.totals.processed !== RECORDS) throw new Error(`${kind}: ${summary.totals.processed} processed`);
    const loadedRuns = await processorSeconds(service.metricsPorts[0]!, kind);

    // then one record at a time, each POSTed once the one before is terminal
    for (let n = 0; n < ALONE_RECORDS; n++) {
      const res = await fetch(`${service.base}/records?process=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'bench', category: 'bench', payload: { n } }),
      });
      const { id } = (await res.json()) as { id: string };
      for (;;) {
        const record = (await (await fetch(`${service.base}/records/${id}`)).json()) as { status: string };
        if (record.status !== 'pending') break;
        await sleep(2);
      }
    }
    const all = await processorSeconds(service.metricsPorts[0]!, kind);
    return {
      recordsPerSecond: round(RECORDS / seconds),
      processorMeanMs: round((loadedRuns.sum / loadedRuns.count) * 1000, 3),
      processorAloneMs: round(((all.sum - loadedRuns.sum) / (all.count - loadedRuns.count)) * 1000, 3),
      latencyMs: summary.latency_ms,
    };
  } finally {
    await service.stop();
  }
}

async function main() {
  const redis = await startRedisServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-processors-'));
  fs.writeFileSync(path.join(dir, 'processor.mjs'), MODULE);
  const serverPort = await freePort();
  const server = await startProcessorServer(serverPort);
  try {
    const results = {} as Record<Kind, KindResult>;
    for (const kind of KINDS) {
      results[kind] = await run(redis, kind, dir, `http://127.0.0.1:${serverPort}/process`);
      await sleep(500);
    }
    console.log(
      `\n${RECORDS.toLocaleString('en')} records, single POST /records?process=true over ${CONNECTIONS} connections, ` +
        `1 worker (WORKER_CONCURRENCY=${CONCURRENCY}), ${DB_KIND}, ${os.cpus().length} CPUs\n`,
    );
    console.log(
      'processor  records/s  created→terminal p50/p95/p99 ms  run mean under load ms  run mean one at a time ms',
    );
    for (const kind of KINDS) {
      const r = results[kind];
      const latency = `${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99}`;
      console.log(
        `${kind.padEnd(9)}  ${String(r.recordsPerSecond).padStart(9)}  ${latency.padStart(31)}  ` +
          `${String(r.processorMeanMs).padStart(22)}  ${String(r.processorAloneMs).padStart(25)}`,
      );
    }
    const extra = round(results.http.processorAloneMs - results.module.processorAloneMs, 3);
    console.log(
      `\nthe HTTP round trip adds ${extra} ms per record (one at a time: http run mean − module run mean, ` +
        `${ALONE_RECORDS} records each)`,
    );
  } finally {
    server.kill();
    await redis.stop({ hard: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
