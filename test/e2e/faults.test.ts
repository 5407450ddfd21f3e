import { expect } from 'chai';
import { Redis } from 'ioredis';
import { sampleBodies, startStack, type Stack } from '../helpers/stack.js';

/**
 * The guarantees, proven by breaking things: real api and worker processes,
 * a redis-server of the test's own, kill -9, Redis restarted without its data.
 */
describe('e2e: faults', function () {
  this.timeout(180_000);
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  const report = (line: string) => console.log(`      ${line}`);

  async function redisClient(s: Stack): Promise<Redis> {
    const client = new Redis(s.redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined); // the tests below take this Redis away on purpose
    await client.ping();
    return client;
  }

  async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it('1. a worker killed with SIGKILL mid-run: every record terminal, exactly one terminal transition each', async () => {
    stack = await startStack({ workers: 2, env: { WORKER_CONCURRENCY: '32' } });
    const s = stack;
    const submitted = s.submit(sampleBodies(2000));
    // kill while the victim is busy: the queue is fed and some records are already done
    await waitFor(async () => (await s.counts()).processed >= 300, 60_000, '300 processed');
    s.workers[0]!.child.kill('SIGKILL');
    const statuses = (await submitted).map((r) => r.status);
    expect(statuses.filter((x) => x !== 201)).to.deep.equal([]);

    await s.waitUntilNoPending(2000, 90_000);
    const counts = await s.counts();
    const duplicates = await s.duplicates();
    const stalled = (s.workers[1]!.output().match(/job stalled/g) ?? []).length;
    report(
      `records 2000, terminal ${counts.processed + counts.failed}, duplicates ${duplicates}, lost ${2000 - counts.all}, redelivered after the kill ${stalled}`,
    );
    expect(counts).to.deep.equal({ all: 2000, pending: 0, processed: 2000, failed: 0 });
    expect(duplicates).to.equal(0);
    const [{ n }] = (await s.knex('record_transitions').count({ n: '*' })) as Array<{ n: number | string }>;
    expect(Number(n)).to.equal(2000);
  });

  it('2 + 5. Redis shut down (nosave) mid-run and started empty: writes get 201, everything is processed once, by the same worker', async () => {
    stack = await startStack({ workers: 1 });
    const s = stack;
    const before = s.submit(sampleBodies(600));
    await waitFor(async () => (await s.counts()).processed >= 100, 60_000, '100 processed');
    const admin = await redisClient(s);
    await admin.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
    admin.disconnect();
    const beforeStatuses = (await before).map((r) => r.status);

    const during = await s.submit(sampleBodies(200, 600));
    const health = await fetch(`${s.base}/health`);
    expect(health.status).to.equal(503);
    expect(((await health.json()) as { queue: { status: string } }).queue.status).to.equal('error');

    await s.redis.start();
    const after = await s.submit(sampleBodies(200, 800));
    await s.waitUntilNoPending(1000, 90_000);
    const counts = await s.counts();
    const duplicates = await s.duplicates();
    report(
      `records 1000 (200 during the outage), terminal ${counts.processed + counts.failed}, duplicates ${duplicates}, lost ${1000 - counts.all}`,
    );
    expect(beforeStatuses.filter((x) => x !== 201)).to.deep.equal([]);
    expect(during.map((r) => r.status)).to.deep.equal(Array(200).fill(201));
    expect(after.map((r) => r.status)).to.deep.equal(Array(200).fill(201));
    expect(counts).to.deep.equal({ all: 1000, pending: 0, processed: 1000, failed: 0 });
    expect(duplicates).to.equal(0);
    // 5: the same worker process consumed again after Redis returned, without a restart
    expect(s.workers).to.have.length(1);
    expect(s.workers[0]!.child.exitCode).to.equal(null);
    const afterIds = new Set(after.map((r) => r.id));
    const workerLines = s.workers[0]!.output()
      .split('\n')
      .filter((l) => l.includes('"msg":"transition"'));
    const processedAfter = workerLines.filter((l) => afterIds.has((JSON.parse(l) as { record_id: string }).record_id));
    expect(processedAfter).to.have.length(200);
    expect((await fetch(`${s.base}/health`)).status).to.equal(200);
  });

  it('3. SIGTERM to a worker mid-run: it exits 0 after its in-flight jobs, leaving no record pending without a live job', async () => {
    stack = await startStack({ workers: 1, env: { WORKER_CONCURRENCY: '32' } });
    const s = stack;
    // submissions go on while the worker drains and after it has gone
    const submitting = s.submit(sampleBodies(1500));
    await waitFor(async () => (await s.counts()).processed >= 200, 60_000, '200 processed');
    const code = await s.workers[0]!.stop('SIGTERM');
    expect(code).to.equal(0);
    expect((await submitting).filter((r) => r.status !== 201)).to.deep.equal([]);

    const redis = await redisClient(s);
    const prefix = s.env.QUEUE_PREFIX!;
    const active = await redis.llen(`${prefix}:records:active`);
    const pending = (await s.knex('records').select('id', 'queue_seq').where({ status: 'pending' })) as Array<{
      id: string;
      queue_seq: number;
    }>;
    const orphans: string[] = [];
    for (const r of pending) {
      const [created, finished] = await redis.hmget(
        `${prefix}:records:${r.id}-${r.queue_seq}`,
        'timestamp',
        'finishedOn',
      );
      if (created === null || finished !== null) orphans.push(r.id);
    }
    redis.disconnect();
    report(`after SIGTERM: ${pending.length} pending, all with a waiting job; active jobs left ${active}`);
    expect(active).to.equal(0);
    expect(orphans).to.deep.equal([]);
    expect(pending.length).to.be.greaterThan(0);

    await s.startWorker();
    await s.waitUntilNoPending(1500, 60_000);
    expect(await s.duplicates()).to.equal(0);
  });

  it('3b. SIGTERM to the API answers a client waiting on Prefer: wait at once (202, still queued), then exits 0', async () => {
    stack = await startStack({ workers: 0 });
    const s = stack;
    const [created] = await s.submit(sampleBodies(1), { query: '' });
    // no worker runs: this request would wait its full 30 s for an outcome, and is in flight during SIGTERM
    const inFlight = fetch(`${s.base}/records/${created!.id}/process`, {
      method: 'POST',
      headers: { prefer: 'wait=30' },
    }).then(async (res) => ({ res, at: Date.now(), body: (await res.json()) as { status: string } }));
    await new Promise((r) => setTimeout(r, 500));
    const signalled = Date.now();
    const exit = s.api.stop('SIGTERM').then((code) => ({ code, at: Date.now() }));
    const answer = await inFlight;
    const exited = await exit;
    report(`answered ${answer.at - signalled} ms after SIGTERM, exited ${exited.at - signalled} ms after`);
    expect(answer.res.status).to.equal(202);
    expect(answer.body.status).to.equal('pending');
    expect(answer.at - signalled).to.be.lessThan(2000);
    expect(exited.code).to.equal(0);
    // a keep-alive connection does not hold the close open either
    expect(exited.at - signalled).to.be.lessThan(2000);
    // nothing half-applied: the record stays queued, its intent stored
    const [row] = (await s.knex('records').select('status', 'queued_at')) as Array<{
      status: string;
      queued_at: unknown;
    }>;
    expect(row!.status).to.equal('pending');
    expect(row!.queued_at).to.not.equal(null);
  });

  it('4b. the API killed with SIGKILL while clients submit with Idempotency-Key: one record per key, none lost', async () => {
    stack = await startStack({ workers: 1 });
    const s = stack;
    const keys = Array.from({ length: 400 }, (_, i) => `client-${i}`);
    let next = 0;
    let retries = 0;
    const answers: number[] = [];
    const lane = async () => {
      while (next < keys.length) {
        const i = next++;
        for (;;) {
          let status: number | null = null;
          try {
            const res = await fetch(`${s.base}/records?process=true`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'idempotency-key': keys[i]! },
              body: JSON.stringify(sampleBodies(1, i)[0]),
            });
            status = res.status;
          } catch {
            // connection refused or reset: the API is down; retry as a client would
          }
          if (status !== null && status < 500) {
            // outside the try: a wrong answer fails the test instead of being retried
            answers.push(status);
            break;
          }
          retries++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    const clients = Promise.all(Array.from({ length: 20 }, lane));
    await waitFor(async () => (await s.counts()).all >= 100, 30_000, '100 records');
    await s.api.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await s.startApi();
    await clients;

    await s.waitUntilNoPending(400, 60_000);
    const [{ n }] = (await s.knex('idempotency_responses').count({ n: '*' })) as Array<{ n: number | string }>;
    report(`400 keys, ${retries} client retries across the kill: records ${(await s.counts()).all}, keys stored ${n}`);
    expect(answers.filter((status) => status !== 201)).to.deep.equal([]);
    expect(Number(n)).to.equal(400);
    expect((await s.counts()).all).to.equal(400);
    expect(await s.duplicates()).to.equal(0);
  });

  it('6. Redis memory stays flat: used_memory after 20,000 processed records is close to its value after 1,000', async () => {
    stack = await startStack({ workers: 1, env: { WORKER_CONCURRENCY: '32' } });
    const s = stack;
    const redis = await redisClient(s);
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

    await s.submit(sampleBodies(1000), { concurrency: 64 });
    await s.waitUntilNoPending(1000, 60_000);
    const after1k = await usedMemory();
    for (let done = 1000; done < 20_000; done += 2000) {
      await s.submit(sampleBodies(Math.min(2000, 20_000 - done), done), { concurrency: 64 });
    }
    await s.waitUntilNoPending(20_000, 120_000);
    const after20k = await usedMemory();
    redis.disconnect();
    report(`Redis used_memory after 1,000 records ${after1k} B, after 20,000 ${after20k} B`);
    // without bounded retention 19,000 more jobs would add megabytes
    expect(after20k - after1k).to.be.lessThan(512 * 1024);
  });
});
