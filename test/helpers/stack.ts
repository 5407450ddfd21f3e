import { randomUUID } from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { createKnex } from '../../shared/db/knex.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { startProcess, type ServiceProcess } from './processes.js';
import { freePort, startRedisServer, type RedisServer } from './redis-server.js';

/** The real thing: its own redis-server, a fresh database, and api and worker processes started as the README does. */
export interface Stack {
  redis: RedisServer;
  database: TestDatabase;
  knex: Knex;
  base: string;
  env: Record<string, string>;
  api: ServiceProcess;
  workers: ServiceProcess[];
  startApi(): Promise<ServiceProcess>;
  startWorker(env?: Record<string, string>): Promise<ServiceProcess>;
  /** POSTs each body (at most `concurrency` in flight) and returns the responses' statuses and ids. */
  submit(
    bodies: object[],
    opts?: { query?: string; concurrency?: number },
  ): Promise<Array<{ status: number; id?: string }>>;
  counts(): Promise<{ all: number; pending: number; processed: number; failed: number }>;
  /** Records with more than one terminal transition in their history. */
  duplicates(): Promise<number>;
  waitUntilNoPending(expectedAll: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

async function stopWithin(p: ServiceProcess, ms: number): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  await p.stop('SIGTERM');
  clearTimeout(timer);
}

export interface StackOptions {
  workers?: number;
  env?: Record<string, string>;
  /** a Redis of the caller's (stopped with the stack) instead of a redis-server of the stack's own */
  redis?: RedisServer;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const redis = opts.redis ?? (await startRedisServer());
  const database = await createTestDatabase();
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: `e2e-${randomUUID()}`,
    JOB_LOCK_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '500',
    RETRY_BACKOFF_MS: '50',
    ...opts.env,
  };
  const knex = database.url.startsWith('sqlite:')
    ? createKnex(database.url)
    : knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 2 } });

  const stack: Stack = {
    redis,
    database,
    knex,
    base: `http://127.0.0.1:${port}`,
    env,
    api: undefined as unknown as ServiceProcess,
    workers: [],
    async startApi() {
      stack.api = startProcess('api', env);
      await stack.api.waitForOutput('api listening');
      return stack.api;
    },
    async startWorker(extra = {}) {
      const worker = startProcess('worker', { ...env, METRICS_PORT: String(await freePort()), ...extra });
      await worker.waitForOutput('worker started');
      stack.workers.push(worker);
      return worker;
    },
    async submit(bodies, { query = '?process=true', concurrency = 50 } = {}) {
      const results: Array<{ status: number; id?: string }> = new Array(bodies.length);
      let next = 0;
      const lane = async () => {
        while (next < bodies.length) {
          const i = next++;
          const res = await fetch(`${stack.base}/records${query}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(bodies[i]),
          });
          const json = (await res.json()) as { id?: string };
          results[i] = { status: res.status, id: json.id };
        }
      };
      await Promise.all(Array.from({ length: concurrency }, lane));
      return results;
    },
    async counts() {
      const rows = (await knex('records').select('status').count({ n: '*' }).groupBy('status')) as Array<{
        status: string;
        n: number | string;
      }>;
      const out = { all: 0, pending: 0, processed: 0, failed: 0 };
      for (const r of rows) {
        out[r.status as 'pending'] = Number(r.n);
        out.all += Number(r.n);
      }
      return out;
    },
    async duplicates() {
      const rows = await knex('record_transitions')
        .select('record_id')
        .whereIn('to_status', ['processed', 'failed'])
        .groupBy('record_id')
        .havingRaw('count(*) > 1');
      return rows.length;
    },
    async waitUntilNoPending(expectedAll, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const c = await stack.counts();
        if (c.all === expectedAll && c.pending === 0) return;
        if (Date.now() > deadline) throw new Error(`not all terminal after ${timeoutMs} ms: ${JSON.stringify(c)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      // SIGTERM, so each process writes its coverage on the way out; SIGKILL if it lingers
      await Promise.all([stack.api, ...stack.workers].filter(Boolean).map((p) => stopWithin(p, 10_000)));
      await knex.destroy();
      await redis.stop({ hard: true });
      await database.drop();
    },
  };
  await stack.startApi();
  for (let i = 0; i < (opts.workers ?? 1); i++) await stack.startWorker();
  return stack;
}

export const sampleBodies = (n: number, offset = 0) =>
  Array.from({ length: n }, (_, i) => ({
    source: 'e2e',
    category: `cat-${(i + offset) % 5}`,
    payload: { priority: (i + offset) % 6, n: i + offset },
  }));
