import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import bunyan from 'bunyan';
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { createProcessingQueue, createRedisConnection, type ProcessJobData } from '../../shared/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { testDatabaseUrl } from '../helpers/env.js';
import { startProcess } from '../helpers/processes.js';
import { freePort, type RedisServer } from '../helpers/redis-server.js';
import { startSentinelGroup, type RedisNode, type SentinelGroup } from '../helpers/sentinel.js';
import { sampleBodies, startStack, type Stack } from '../helpers/stack.js';

const RECORDS = 2000;
const CLIENTS = 20;
/** how long the replica misses writes before the primary dies: what the failover loses */
const STALL_MS = 500;
const report = (line: string) => console.log(`      ${line}`);
const engine = testDatabaseUrl()?.startsWith('postgres') ? 'PostgreSQL' : 'SQLite';

interface Submission {
  /** id per body, from its 201 */
  ids: string[];
  /** requests sent again: after a connection failure or timeout, or an answer of this status */
  retries: Record<string, number>;
  /** every 5xx answered, by status */
  serverErrors: Record<string, number>;
  replays: number;
}

/**
 * Clients as a careful user writes them: every record with its own Idempotency-Key, sent
 * again (same key, same body) after a connection failure, a timeout, a 5xx or a 429, until
 * it is answered 201. Anything else is a failure of the test. `progress` counts 201s.
 */
async function submitWithRetries(base: string, bodies: object[], progress: { done: number }): Promise<Submission> {
  const out: Submission = { ids: new Array(bodies.length), retries: {}, serverErrors: {}, replays: 0 };
  const keys = bodies.map(() => `failover-${randomUUID()}`);
  const count = (bucket: Record<string, number>, what: string) => (bucket[what] = (bucket[what] ?? 0) + 1);
  let next = 0;
  const lane = async () => {
    while (next < bodies.length) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        if (attempt > 50) throw new Error(`record ${i} not accepted after 50 attempts`);
        let res: Response;
        try {
          res = await fetch(`${base}/records?process=true`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': keys[i]! },
            body: JSON.stringify(bodies[i]),
            signal: AbortSignal.timeout(15_000),
          });
        } catch {
          count(out.retries, 'connection');
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        const json = (await res.json()) as { id?: string };
        if (res.status === 201) {
          out.ids[i] = json.id!;
          if (res.headers.get('idempotent-replayed') === 'true') out.replays++;
          progress.done++;
          break;
        }
        if (res.status >= 500) count(out.serverErrors, String(res.status));
        if (res.status >= 500 || res.status === 429) {
          count(out.retries, String(res.status));
          const wait = Number(res.headers.get('retry-after') ?? '0.2');
          await new Promise((r) => setTimeout(r, Math.min(wait, 2) * 1000));
          continue;
        }
        throw new Error(`record ${i}: unexpected ${res.status} ${JSON.stringify(json)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, lane));
  return out;
}

/** Counts a process's log lines with this message after `since` (ms since the epoch), and sums a field of theirs. */
function logLines(output: string, msg: string, since: number): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => Date.parse(String(l.time)) >= since);
}

/** `workflow_job_duration_seconds_count{outcome}` from a worker's /metrics. */
async function jobsEnded(worker: Stack['workers'][number], outcome: string): Promise<number> {
  const line = worker
    .output()
    .split('\n')
    .find((l) => l.includes('"worker started"'));
  const port = (JSON.parse(line!) as { metrics_port: number }).metrics_port;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sample = text
    .split('\n')
    .find((l) => l.startsWith('workflow_job_duration_seconds_count') && l.includes(`outcome="${outcome}"`));
  return Number(sample?.split(' ').pop() ?? 0);
}

/** The group as the stack's Redis: the stack stops it with everything else. */
const asStackRedis = (group: SentinelGroup): RedisServer => ({
  url: group.url,
  port: 0,
  stop: () => group.stop(),
  start: async () => undefined,
});

/**
 * Redis Sentinel, for real: a primary, a replica and three sentinels on loopback, the API
 * and a worker pointed at them by REDIS_URL=redis+sentinel://…; the primary is SIGKILLed
 * while clients submit, after its replica has missed its last writes while the queue was
 * paused, so the failover loses jobs the API had added and no worker had run yet. The database of record repairs that; nothing is lost,
 * nothing is done twice, and no client is answered 5xx.
 */
describe(`e2e: Redis Sentinel failover under load (${engine})`, function () {
  this.timeout(300_000);
  let group: SentinelGroup | undefined;
  let stack: Stack | undefined;
  /** the test's own connection to the queue, through the sentinels as the processes' */
  let queue: Queue<ProcessJobData> | undefined;
  let connection: Redis | undefined;
  after(async () => {
    await queue?.close();
    connection?.disconnect();
    if (stack) await stack.stop();
    else await group?.stop();
  });

  /** One run: submit RECORDS while the current primary dies; check every record and transition of the run. */
  async function failoverUnderLoad(run: string, offset: number) {
    const s = stack!;
    const g = group!;
    const progress = { done: 0 };
    const bodies = sampleBodies(RECORDS, offset);
    const started = Date.now();
    const submitting = submitWithRetries(s.base, bodies, progress);
    while (progress.done < RECORDS / 3) await new Promise((r) => setTimeout(r, 10));
    const victim: RedisNode = await g.primary();
    // the queue is paused first (and the replica has that), so the jobs the API adds while the
    // replica misses them are still waiting when the primary dies: lost with it, their records
    // pending and their enqueues confirmed. Only the reconciler's audit can find them
    await queue!.pause();
    await g.stallReplica(STALL_MS);
    const killedAt = Date.now();
    await victim.stop({ hard: true });
    const promoted = await g.waitForNewPrimary(victim, 60_000);
    const withoutPrimaryMs = Date.now() - killedAt;
    await queue!.resume();
    const submission = await submitting;
    const submittedMs = Date.now() - started;

    await s.waitUntilNoPending(offset + RECORDS, 60_000);
    const rows = await s.knex('records').whereIn('id', submission.ids).select('id', 'status');
    const [{ terminal }] = (await s
      .knex('record_transitions')
      .whereIn('record_id', submission.ids)
      .whereIn('to_status', ['processed', 'failed'])
      .count({ terminal: '*' })) as Array<{ terminal: number | string }>;
    const duplicates = await s.duplicates();
    const apiFollowed = logLines(s.api.output(), 'redis primary in use', killedAt).map((l) =>
      Date.parse(String(l.time)),
    );
    const deferred = logLines(s.api.output(), 'enqueue deferred to reconciler', killedAt).reduce(
      (sum, l) => sum + Number(l.count ?? 0),
      0,
    );
    const repairs = logLines(s.workers[0]!.output(), 'reconciler queued lost jobs again', killedAt);
    const requeued = repairs.reduce((sum, l) => sum + Number(l.requeued ?? 0), 0);
    // confirmed jobs only an audit finds: added before the kill, gone with the writes the replica missed
    const audited = repairs.reduce((sum, l) => sum + Number(l.audit ?? 0), 0);
    const audits = logLines(s.workers[0]!.output(), 'Redis may have lost jobs: auditing every queued record', killedAt);
    const skipped = (await jobsEnded(s.workers[0]!, 'skipped')) + (await jobsEnded(s.workers[0]!, 'superseded'));
    const retries = Object.values(submission.retries).reduce((a, b) => a + b, 0);
    const serverErrors = Object.values(submission.serverErrors).reduce((a, b) => a + b, 0);
    report(
      `${run}: records ${RECORDS}, stored ${rows.length}, lost ${RECORDS - rows.length}, ` +
        `duplicates ${duplicates}, terminal transitions ${Number(terminal)}; ` +
        `without a primary ${(withoutPrimaryMs / 1000).toFixed(1)} s (the API on the new one ` +
        `${apiFollowed.length ? ((Math.min(...apiFollowed) - killedAt) / 1000).toFixed(1) : '?'} s after the kill); ` +
        `client retries ${retries} ${JSON.stringify(submission.retries)}, idempotent replays ${submission.replays}, ` +
        `5xx answered ${serverErrors}; enqueues the API deferred while no primary answered ${deferred}, ` +
        `jobs the reconciler queued again ${requeued} (${audited} found by the audit of ${audits.length} after ` +
        `the server changed); ` +
        `deliveries stopped by the guard (since start) ${skipped}; submitted in ${(submittedMs / 1000).toFixed(1)} s; ` +
        `primary ${victim.port} -> ${promoted.port}`,
    );

    expect(new Set(submission.ids).size, 'one record per idempotency key').to.equal(RECORDS);
    expect(rows.length, 'every accepted record stored').to.equal(RECORDS);
    expect(rows.filter((r) => r.status !== 'processed')).to.deep.equal([]);
    expect(Number(terminal), 'exactly one terminal transition per record').to.equal(RECORDS);
    expect(duplicates).to.equal(0);
    expect(audited, 'jobs the failover lost that only the audit found').to.be.greaterThan(0);
    expect(submission.serverErrors, '5xx answered').to.deep.equal({});
    expect(apiFollowed, 'the API followed the failover by itself').to.not.deep.equal([]);
    const health = (await (await fetch(`${s.base}/health`)).json()) as { redis: { primary: string } };
    expect(health.redis).to.deep.equal({
      mode: 'sentinel',
      master_name: g.name,
      primary: `127.0.0.1:${promoted.port}`,
    });
    return { victim, promoted };
  }

  it(`${RECORDS.toLocaleString('en')} records with the primary SIGKILLed mid-run, then again after the old primary came back as a replica`, async () => {
    group = await startSentinelGroup({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
    stack = await startStack({
      redis: asStackRedis(group),
      env: { RECONCILE_INTERVAL_MS: '500', JOB_LOCK_MS: '2000', STALLED_INTERVAL_MS: '1000' },
    });
    const health = (await (await fetch(`${stack.base}/health`)).json()) as { redis: { primary: string } };
    expect(health.redis.primary).to.equal(`127.0.0.1:${group.nodes[0]!.port}`);
    connection = createRedisConnection(group.url, 'worker', bunyan.createLogger({ name: 'test', streams: [] }));
    queue = createProcessingQueue(connection, { prefix: stack.env.QUEUE_PREFIX!, maxAttempts: 5, retryBackoffMs: 50 });

    const first = await failoverUnderLoad('failover', 0);

    // the old primary comes back empty; the sentinels make it a replica of the new one
    const restartedAt = Date.now();
    await first.victim.start();
    await group.waitForReplica(first.victim, 60_000);
    report(
      `old primary ${first.victim.port} a synced replica ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after its restart`,
    );

    const second = await failoverUnderLoad('failover back', RECORDS);
    expect(second.promoted).to.equal(first.victim);
    expect(await stack.counts()).to.deep.equal({ all: 2 * RECORDS, pending: 0, processed: 2 * RECORDS, failed: 0 });
  });
});

describe('e2e: npm start with REDIS_URL=redis+sentinel://…', function () {
  this.timeout(60_000);
  let group: SentinelGroup | undefined;
  let database: TestDatabase | undefined;
  after(async () => {
    await group?.stop();
    await database?.drop();
  });

  it('starts the API and a worker on the primary the sentinels name, starts no redis-server, and stops on Ctrl-C', async () => {
    group = await startSentinelGroup();
    database = await createTestDatabase();
    const port = await freePort();
    const start = startProcess(
      'start',
      {
        PORT: String(port),
        HOST: '127.0.0.1',
        METRICS_PORT: String(await freePort()),
        DATABASE_URL: database.url,
        REDIS_URL: group.url,
        QUEUE_PREFIX: `e2e-${randomUUID()}`,
      },
      [],
      { detached: true },
    );
    try {
      await start.waitForOutput('api listening', 30_000);
      await start.waitForOutput('worker started', 30_000);
      const created = await fetch(`http://127.0.0.1:${port}/records?process=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(sampleBodies(1)[0]),
      });
      const { id } = (await created.json()) as { id: string };
      expect(created.status).to.equal(201);
      const deadline = Date.now() + 15_000;
      let status = 'pending';
      while (status === 'pending' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        status = ((await (await fetch(`http://127.0.0.1:${port}/records/${id}`)).json()) as { status: string }).status;
      }
      expect(status).to.equal('processed');
      expect(start.output()).to.not.include('started redis-server');
      process.kill(-start.child.pid!, 'SIGINT');
      expect(await Promise.race([start.closed, new Promise((r) => setTimeout(() => r('running'), 20_000))])).to.equal(
        0,
      );
    } finally {
      if (start.child.exitCode === null) process.kill(-start.child.pid!, 'SIGKILL');
    }
  });
});
