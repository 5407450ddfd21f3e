/**
 * npm run bench:webhooks [-- --db sqlite|postgres] [-- --records 10000]
 *
 * What being told costs, measured in one run against real processes (an API and one
 * worker, a redis-server and a temp database of the bench's own, a receiver on loopback):
 * - end to end: records/s from the first POST /records?process=true until every record is
 *   terminal, with no subscription and then with one (to record.processed and record.failed);
 * - deliveries/s: a backlog of deliveries (one per record created while no worker runs)
 *   drained by one worker into the loopback receiver;
 * - events/s one GET /events stream keeps up with while batches of records are stored.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDatabase, type Database } from '../shared/index.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { openSse } from '../test/helpers/sse-client.js';
import { startService as startBenchService } from './service.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const dbKind = flag('db', 'sqlite');
const RECORDS = Number(flag('records', '10000'));
const CONNECTIONS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const body = (i: number) => ({ source: 'bench', category: `c${i % 8}`, payload: { priority: i % 6, n: i } });

/** The bench's service with a connection of its own to the database, to count rows. */
async function startService(redis: RedisServer, tag: string, workers: number) {
  const service = await startBenchService({
    redis,
    workers,
    tag,
    dbKind,
    concurrency: 256,
    env: { WEBHOOK_CONCURRENCY: '64', WEBHOOK_ALLOW_PRIVATE_URLS: 'true' },
    apiEnv: { LOG_LEVEL: 'warn' },
  });
  const db = createDatabase(service.database.url);
  return {
    ...service,
    db,
    async stop() {
      await db.close();
      await service.stop();
    },
  };
}

async function post(url: string, payload: object): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`${url}: ${res.status} ${text.slice(0, 200)}`);
}

async function postAll(url: string, bodies: object[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < bodies.length) await post(url, bodies[next++]!);
    }),
  );
}

async function count(db: Database, table: string, where: Record<string, string>, not = false): Promise<number> {
  const q = db.knex(table);
  if (not) q.whereNot(where);
  else q.where(where);
  const [{ n }] = (await q.count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(n);
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await sleep(20);
}

/** A loopback receiver answering 204 to everything, counting what it got. */
async function startReceiver() {
  let received = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function endToEnd(redis: RedisServer, subscriptions: number, receiverUrl: string) {
  const s = await startService(redis, `e2e${subscriptions}`, 1);
  try {
    for (let i = 0; i < subscriptions; i++) {
      await post(`${s.base}/webhooks`, { url: receiverUrl, events: ['record.processed', 'record.failed'] });
    }
    const bodies = Array.from({ length: RECORDS }, (_, i) => body(i));
    const started = performance.now();
    await postAll(`${s.base}/records?process=true`, bodies);
    await until(async () => (await count(s.db, 'records', { status: 'pending' })) === 0);
    const terminal = performance.now() - started;
    let delivered = terminal;
    if (subscriptions > 0) {
      await until(
        async () => (await count(s.db, 'webhook_deliveries', { status: 'delivered' })) === RECORDS * subscriptions,
      );
      delivered = performance.now() - started;
    }
    return { recordsPerSecond: Math.round(RECORDS / (terminal / 1000)), allDeliveredMs: Math.round(delivered) };
  } finally {
    await s.stop();
  }
}

async function deliveryDrain(redis: RedisServer, receiver: Awaited<ReturnType<typeof startReceiver>>) {
  const s = await startService(redis, 'drain', 0);
  try {
    await post(`${s.base}/webhooks`, { url: receiver.url, events: ['record.created'] });
    for (let i = 0; i < RECORDS; i += 1000) {
      await post(`${s.base}/records/batch`, {
        records: Array.from({ length: Math.min(1000, RECORDS - i) }, (_, j) => body(i + j)),
      });
    }
    const before = receiver.received();
    const started = performance.now();
    await s.startWorker();
    await until(async () => (await count(s.db, 'webhook_deliveries', { status: 'delivered' })) === RECORDS);
    const ms = performance.now() - started;
    return { deliveriesPerSecond: Math.round(RECORDS / (ms / 1000)), requests: receiver.received() - before };
  } finally {
    await s.stop();
  }
}

async function streamRate(redis: RedisServer) {
  const s = await startService(redis, 'stream', 0);
  try {
    const stream = await openSse(`${s.base}/events`);
    const started = performance.now();
    const storing = (async () => {
      for (let i = 0; i < RECORDS; i += 500) {
        await post(`${s.base}/records/batch`, {
          records: Array.from({ length: Math.min(500, RECORDS - i) }, (_, j) => body(i + j)),
        });
      }
      return performance.now() - started;
    })();
    await stream.waitFor(RECORDS, 300_000);
    const streamed = performance.now() - started;
    const stored = await storing;
    stream.close();
    return {
      eventsPerSecond: Math.round(RECORDS / (streamed / 1000)),
      storedPerSecond: Math.round(RECORDS / (stored / 1000)),
      lagAtEndMs: Math.round(streamed - stored),
    };
  } finally {
    await s.stop();
  }
}

const redis = await startRedisServer();
const receiver = await startReceiver();
try {
  console.log(`bench:webhooks on ${dbKind}, ${RECORDS} records per run, one API and one worker process`);
  const none = await endToEnd(redis, 0, receiver.url);
  const one = await endToEnd(redis, 1, receiver.url);
  console.log(`end to end, no subscription:  ${none.recordsPerSecond} records/s`);
  console.log(
    `end to end, one subscription: ${one.recordsPerSecond} records/s ` +
      `(${Math.round((1 - one.recordsPerSecond / none.recordsPerSecond) * 100)}% less); every delivery in ${one.allDeliveredMs} ms`,
  );
  const drain = await deliveryDrain(redis, receiver);
  console.log(`deliveries to a loopback receiver: ${drain.deliveriesPerSecond}/s (${drain.requests} requests)`);
  const stream = await streamRate(redis);
  console.log(
    `one GET /events stream: ${stream.eventsPerSecond} events/s while ${stream.storedPerSecond} records/s were stored ` +
      `(the last event arrived ${stream.lagAtEndMs} ms after the last batch was stored)`,
  );
} finally {
  await receiver.close();
  await redis.stop({ hard: true });
}
