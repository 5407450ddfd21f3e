/**
 * What the benchmarks share: a fresh migrated database, the built API and workers started
 * as real processes, autocannon as a promise, and a wait until every record is terminal.
 */
import autocannon from 'autocannon';
import { createDatabase } from '../shared/index.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/database.js';
import { startProcess, type ServiceProcess } from '../test/helpers/processes.js';
import { freePort, type RedisServer } from '../test/helpers/redis-server.js';

export type DatabaseKind = 'sqlite' | 'postgres' | string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  if (kind === 'postgres') process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/test';
  else delete process.env.TEST_DATABASE_URL;
  const database = await createTestDatabase();
  const db = createDatabase(database.url);
  await db.migrate();
  await db.close();
  return database;
}

export async function waitForTerminal(url: string, expected: number, onProgress?: (n: number) => void): Promise<void> {
  const db = createDatabase(url);
  try {
    for (;;) {
      const [{ n }] = (await db.knex('records').whereNot('status', 'pending').count({ n: '*' })) as Array<{
        n: number | string;
      }>;
      onProgress?.(Number(n));
      if (Number(n) >= expected) return;
      await sleep(50);
    }
  } finally {
    await db.close();
  }
}

/**
 * autocannon as a promise. A run of `amount` requests ends on the first sample tick after its
 * last response, so those runs sample every 100 ms instead of every second: timed to a tenth
 * of a second, not rounded up to whole seconds.
 */
export function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(opts.amount ? { sampleInt: 100, ...opts } : opts, (err, result) =>
      err ? reject(err) : resolve(result),
    );
  });
}

export interface Service {
  api: ServiceProcess;
  workers: ServiceProcess[];
  /** each worker's METRICS_PORT */
  metricsPorts: number[];
  base: string;
  database: TestDatabase;
  /** starts one more worker (its output is not kept) */
  startWorker(): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  redis: RedisServer;
  workers: number;
  tag: string;
  dbKind: DatabaseKind;
  /** WORKER_CONCURRENCY */
  concurrency: number;
  env?: Record<string, string>;
  /** the API's alone, over `env` (LOG_LEVEL=warn for an API whose request lines are not measured) */
  apiEnv?: Record<string, string>;
  workerNodeArgs?: string[];
}

export async function startService({
  redis,
  workers,
  tag,
  dbKind,
  concurrency,
  env: extraEnv = {},
  apiEnv = {},
  workerNodeArgs = [],
}: ServiceOptions): Promise<Service> {
  const database = await benchDatabase(dbKind);
  const port = await freePort();
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: `bench-${tag}-${Date.now()}`,
    NODE_ENV: 'production',
    WORKER_CONCURRENCY: String(concurrency),
    MIGRATE_ON_START: 'false',
    ...extraEnv,
  };
  const api = startProcess('api', { ...env, ...apiEnv });
  // readiness over HTTP: with LOG_LEVEL=warn the API prints no "listening" line
  for (
    let tries = 0;
    !(await fetch(`http://127.0.0.1:${port}/health/live`).then(
      (r) => r.ok,
      () => false,
    ));
    tries++
  ) {
    if (tries > 300 || api.child.exitCode !== null) throw new Error(`api did not start:\n${api.output()}`);
    await sleep(50);
  }
  const started: ServiceProcess[] = [];
  const metricsPorts: number[] = [];
  const startWorker = async () => {
    const metricsPort = await freePort();
    const w = startProcess('worker', { ...env, METRICS_PORT: String(metricsPort) }, workerNodeArgs);
    await w.waitForOutput('worker started');
    // its log is read only to see it start: stop buffering it
    w.discardOutput();
    metricsPorts.push(metricsPort);
    started.push(w);
    return w;
  };
  for (let i = 0; i < workers; i++) await startWorker();
  api.discardOutput();
  return {
    api,
    workers: started,
    metricsPorts,
    base: `http://127.0.0.1:${port}`,
    database,
    startWorker,
    async stop() {
      await Promise.all([api.stop(), ...started.map((w) => w.stop())]);
      await database.drop();
    },
  };
}
