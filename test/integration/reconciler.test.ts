import { expect } from 'chai';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  createDatabase,
  createRedisConnection,
  jobIdFor,
  QUEUE_NAME,
  type Database,
  type NewRecord,
} from '../../shared/index.js';
import { startReconciler, type ReconcileLimits, type Reconciler } from '../../worker/reconciler.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const INTERVAL_MS = 60_000;
const body = (i = 0) => ({ source: 'crm', category: 'lead', payload: { priority: i % 6 } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface EnqueuedRow {
  id: string;
  queue_seq: number | string;
  queued_at: number | string | null;
  enqueued_at: number | string | null;
}

describe('reconciler', () => {
  let h: Harness | undefined;
  let redis: RedisServer | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await h?.close();
    h = undefined;
    await redis?.stop();
    redis = undefined;
  });

  /** A reconciler of the test's own; its timer is stopped, so passes run only when the test calls them. */
  async function reconciler(
    opts: { db?: Database; intervalMs?: number; limits?: Partial<ReconcileLimits> } = {},
  ): Promise<Reconciler> {
    const connection = createRedisConnection(h!.config.redisUrl, 'worker', h!.logger);
    const r = startReconciler({
      db: opts.db ?? h!.db,
      queue: h!.queue,
      connection,
      logger: h!.logger,
      intervalMs: opts.intervalMs ?? INTERVAL_MS,
      limits: opts.limits,
    });
    await r.stop();
    cleanups.push(() => connection.quit().catch(() => connection.disconnect()));
    return r;
  }

  function admin(url = h!.config.redisUrl): Redis {
    const client = new Redis(url);
    cleanups.push(() => client.quit().catch(() => client.disconnect()));
    return client;
  }

  const lockKey = () => `${h!.queue.qualifiedName}:reconcile-lock`;
  const stateKey = () => `${h!.queue.qualifiedName}:reconcile-state`;

  /** The ids of those still without their enqueue confirmation after up to 5 s (the API writes it in the background). */
  async function unconfirmedAfterWait(ids: string[]): Promise<string[]> {
    const deadline = Date.now() + 5000;
    let unconfirmed = ids;
    while (unconfirmed.length > 0 && Date.now() < deadline) {
      await sleep(20);
      unconfirmed = (await rows(ids)).filter((r) => r.enqueued_at === null).map((r) => r.id);
    }
    return unconfirmed;
  }

  /** Records created with ?process=true, their jobs added and confirmed. */
  async function createQueued(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1000) {
      const records = Array.from({ length: Math.min(1000, n - i) }, (_, j) => body(i + j));
      const res = await h!.http.post('/records/batch?process=true').send({ records }).expect(201);
      ids.push(...(res.body.items as Array<{ id: string }>).map((r) => r.id));
    }
    expect(await unconfirmedAfterWait(ids)).to.deep.equal([]);
    return ids;
  }

  /** Intents committed whose job never reached Redis (as if the API died right after its commit). */
  async function storeIntents(n: number): Promise<string[]> {
    const items: NewRecord[] = Array.from({ length: n }, (_, i) => ({ input: body(i), process: true, requestId: 'r' }));
    const outcome = await h!.db.records.insertRecords(items);
    if (outcome.replayed) throw new Error('unexpected replay');
    return outcome.records.map((r) => r.id);
  }

  /** Moves the intents back in time by two intervals, so a pass looks at them. */
  async function age(ids?: string[]): Promise<void> {
    const q = h!.db.knex('records').whereNotNull('queued_at');
    if (ids) q.whereIn('id', ids);
    await q.update({ queued_at: Date.now() - 2 * INTERVAL_MS });
  }

  async function rows(ids: string[]): Promise<EnqueuedRow[]> {
    return (await h!.db
      .knex('records')
      .select('id', 'queue_seq', 'queued_at', 'enqueued_at')
      .whereIn('id', ids)) as EnqueuedRow[];
  }

  /** Waits until the API's Redis connection is back after a restart. */
  async function waitForQueue(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await h!.http.get('/health')).status !== 200) {
      if (Date.now() > deadline) throw new Error('the queue did not come back');
      await sleep(50);
    }
  }

  async function hasJob(id: string, seq = 1): Promise<boolean> {
    return (await h!.queue.getJob(jobIdFor(id, seq))) !== undefined;
  }

  /** The SQL statements a call issues on the database's connections. */
  async function countQueries(db: Database, run: () => Promise<unknown>): Promise<number> {
    let n = 0;
    const count = () => n++;
    const knexes = [...new Set([db.knex, db.reader])];
    for (const k of knexes) k.on('query', count);
    try {
      await run();
    } finally {
      for (const k of knexes) k.off('query', count);
    }
    return n;
  }

  describe('enqueue confirmation', () => {
    it('is written once the job is added, for single creates, batches, process and retry', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const singles = await Promise.all(
        Array.from({ length: 5 }, (_, i) => h!.http.post('/records?process=true').send(body(i)).expect(201)),
      );
      const batch = await createQueued(3);
      const later = await h.http.post('/records').send(body()).expect(201);
      const before = await rows([later.body.id]);
      expect(before[0]!.enqueued_at).to.equal(null);
      await h.http.post(`/records/${later.body.id}/process`).expect(202);

      // written in the background, after the add
      const ids = [...singles.map((r) => r.body.id as string), ...batch, later.body.id as string];
      expect(await unconfirmedAfterWait(ids)).to.deep.equal([]);
    });

    it('belongs to one queueing: a late one changes nothing, and every queueing starts unconfirmed', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const [id] = await storeIntents(1);
      await h.db.reconciliation.confirmEnqueued([{ recordId: id!, seq: 1 }]);
      expect((await rows([id!]))[0]!.enqueued_at).to.not.equal(null);

      const [written] = await h.db.transitions.applyTransitions([
        { recordId: id!, seq: 1, to: 'failed', error: 'x', attempt: 1, requestId: null, jobId: null },
      ]);
      expect(written).to.equal(true);
      expect((await rows([id!]))[0]).to.include({ queued_at: null, enqueued_at: null });
      // the confirmation of the ended queueing arrives late
      await h.db.reconciliation.confirmEnqueued([{ recordId: id!, seq: 1 }]);
      expect((await rows([id!]))[0]!.enqueued_at).to.equal(null);

      const retried = await h.db.transitions.retry(id!, null);
      expect(retried).to.deep.equal({ retried: true, seq: 2 });
      await h.db.reconciliation.confirmEnqueued([{ recordId: id!, seq: 1 }]);
      expect((await rows([id!]))[0]!.enqueued_at).to.equal(null);
      await h.db.reconciliation.confirmEnqueued([{ recordId: id!, seq: 2 }]);
      expect((await rows([id!]))[0]!.enqueued_at).to.not.equal(null);
    });
  });

  describe('a pass', () => {
    it('issues as many queries over 3,000 pending records with live jobs as over 1,000', async () => {
      const counts: number[] = [];
      for (const n of [1000, 3000]) {
        h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
        await createQueued(n);
        await age();
        const r = await reconciler();
        expect(await r.reconcileLostJobs()).to.equal(0); // the first pass also audits: nothing is known yet
        await admin().del(lockKey()); // as when the next interval comes
        let requeued = -1;
        counts.push(await countQueries(h.db, async () => (requeued = await r.reconcileLostJobs())));
        expect(requeued).to.equal(0);
        expect(await h.queue.count()).to.equal(n);
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
        await h.close();
        h = undefined;
      }
      expect(counts[1]).to.equal(counts[0]);
      expect(counts[0]).to.be.within(2, 5); // the pass ran: at least the scan and the pruning
    });

    it('adds again an intent committed without a job, counts it once and confirms it', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const live = await createQueued(2);
      const lost = await storeIntents(1);
      await age();
      const r = await reconciler();
      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await hasJob(lost[0]!)).to.equal(true);
      expect((await rows(lost))[0]!.enqueued_at).to.not.equal(null);
      expect(await h.queue.count()).to.equal(3);
      expect(await r.reconcileLostJobs()).to.equal(0);
      const lines = h.logs.filter((l) => l.msg === 'reconciler queued lost jobs again');
      expect(lines.map((l) => [l.requeued, l.unconfirmed])).to.deep.equal([[1, 1]]);
      expect(live).to.have.length(2);
    });

    it("adds again what was accepted while the queue's Redis was unreachable, once", async () => {
      redis = await startRedisServer();
      h = await createHarness({ env: { REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      await redis.stop();
      const created = await h.http.post('/records?process=true').send(body()).expect(201);
      expect((await rows([created.body.id]))[0]!.enqueued_at).to.equal(null);
      await redis.start();
      await waitForQueue();
      await age();
      const r = await reconciler();
      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await hasJob(created.body.id)).to.equal(true);
      expect(await r.reconcileLostJobs()).to.equal(0);
      expect(await h.queue.count()).to.equal(1);
    });

    it('examines at most maxIntentsPerPass intents and continues in the next pass', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const lost = await storeIntents(25);
      await age();
      const r = await reconciler({ limits: { maxIntentsPerPass: 10, pageSize: 4 } });
      const passes: number[] = [];
      for (let i = 0; i < 4; i++) passes.push(await r.reconcileLostJobs());
      expect(passes).to.deep.equal([10, 10, 5, 0]);
      for (const id of lost) expect(await hasJob(id), id).to.equal(true);
    });

    it('does not count, nor add beside, a finished job it could not remove', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const worker = h.startWorker();
      const created = await h.http.post('/records?process=true').send(body()).expect(201);
      const id = created.body.id as string;
      await h.waitForTerminal(id);
      await worker.close();
      // as if the job's last attempt finished while its transition could not be written
      await h.db.knex('records').where({ id }).update({ status: 'pending', processed_at: null, queued_at: 1 });
      const redisAdmin = admin();
      const jobKey = h.queue.toKey(jobIdFor(id, 1));
      await redisAdmin.set(`${jobKey}:lock`, 'another-worker'); // BullMQ refuses to remove a locked job

      const r = await reconciler();
      expect(await r.reconcileLostJobs()).to.equal(0);
      expect(await redisAdmin.hget(jobKey, 'finishedOn')).to.not.equal(null);
      expect(h.logs.some((l) => l.msg.startsWith('finished job could not be removed'))).to.equal(true);

      await redisAdmin.del(`${jobKey}:lock`);
      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await redisAdmin.hget(jobKey, 'finishedOn')).to.equal(null);
      expect((await h.queue.getJobCounts('waiting')).waiting).to.equal(1);
    });
    it('adds again, at the next pass, a job whose last attempt threw before its transition was written', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS), MAX_ATTEMPTS: '1' } });
      const r = await reconciler();
      expect(await r.reconcileLostJobs()).to.equal(0);
      const [id] = await createQueued(1);
      // a worker whose every attempt throws, as when the database is away while the outcome is written
      const connection = createRedisConnection(h.config.redisUrl, 'worker', h.logger);
      cleanups.push(() => connection.quit().catch(() => connection.disconnect()));
      const failing = new Worker(
        QUEUE_NAME,
        async () => {
          throw new Error('database unavailable');
        },
        { connection, prefix: h.config.queuePrefix },
      );
      const deadline = Date.now() + 10_000;
      while ((await h.queue.getJobCounts('failed')).failed !== 1 && Date.now() < deadline) await sleep(20);
      await failing.close();
      expect((await rows([id!]))[0]!.enqueued_at).to.not.equal(null);

      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await h.queue.getJobCounts('failed', 'waiting')).to.deep.include({ failed: 0, waiting: 1 });
      expect(await r.reconcileLostJobs()).to.equal(0);
      const lines = h.logs.filter((l) => l.msg === 'reconciler queued lost jobs again');
      expect(lines.map((l) => [l.requeued, l.failed])).to.deep.equal([[1, 1]]);
    });
  });

  describe('audit and walk', () => {
    it("audits confirmed jobs once Redis's data is gone or its server changed", async () => {
      redis = await startRedisServer();
      h = await createHarness({ env: { REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const [id] = await createQueued(1);
      // no background walk: only the audit can find the loss
      const r = await reconciler({ limits: { walkPerPass: 0 } });
      expect(await r.reconcileLostJobs()).to.equal(0);
      const auditsBefore = h.logs.filter((l) => l.msg.startsWith('Redis may have lost jobs')).length;

      // restarted without its data: the reconciler's state is gone too
      await redis.stop();
      await redis.start();
      await waitForQueue();
      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await hasJob(id!)).to.equal(true);
      expect(await r.reconcileLostJobs()).to.equal(0);

      // a server that kept the state but not the job, as a replica promoted before it got the last writes
      const state = await admin(redis.url).hgetall(stateKey());
      await redis.stop();
      await redis.start();
      await waitForQueue();
      await admin(redis.url).hset(stateKey(), state);
      expect(await r.reconcileLostJobs()).to.equal(1);
      expect(await hasJob(id!)).to.equal(true);
      expect(await r.reconcileLostJobs()).to.equal(0);

      const audits = h.logs.filter((l) => l.msg.startsWith('Redis may have lost jobs')).slice(auditsBefore);
      expect(audits.map((l) => l.reason)).to.deep.equal(['state_missing', 'server_changed']);
    });

    it('the background walk finds a confirmed job deleted without a sign, a few per pass', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const ids = await createQueued(5);
      await age();
      const r = await reconciler({ limits: { walkPerPass: 2, pageSize: 2 } });
      expect(await r.reconcileLostJobs()).to.equal(0); // the first audit, with every job alive
      for (const id of ids) expect(await h.queue.remove(jobIdFor(id, 1))).to.equal(1);

      const passes: number[] = [];
      for (let i = 0; i < 4; i++) passes.push(await r.reconcileLostJobs());
      expect(passes).to.deep.equal([2, 2, 1, 0]);
      for (const id of ids) expect(await hasJob(id), id).to.equal(true);
      const walked = h.logs.filter((l) => l.msg === 'reconciler queued lost jobs again').map((l) => l.walk);
      expect(walked).to.deep.equal([2, 2, 1]);
    });
  });

  describe('the turn', () => {
    it('is released after a pass: another reconciler takes the next turn at once', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const a = await reconciler();
      const b = await reconciler();
      await storeIntents(1);
      await age();
      expect(await a.reconcileLostJobs()).to.equal(1);
      expect(await admin().exists(lockKey())).to.equal(0);
      await storeIntents(1);
      await age();
      expect(await b.reconcileLostJobs()).to.equal(1);
    });

    it('is renewed while a long pass runs, and a turn another process took is neither extended nor released', async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: String(INTERVAL_MS) } });
      const [id] = await createQueued(1);
      // alive but unconfirmed: the pass confirms it, and that write waits for the open transaction below
      await h.db.knex('records').where({ id }).update({ enqueued_at: null, queued_at: 1 });
      const ownDb = createDatabase(h.config.databaseUrl);
      cleanups.push(() => ownDb.close());
      const ttl = 300;
      const a = await reconciler({ db: ownDb, intervalMs: ttl, limits: { lockTtlMs: ttl } });
      const b = await reconciler({ intervalMs: ttl, limits: { lockTtlMs: ttl } });
      const redisAdmin = admin();

      const trx = await h.db.knex.transaction();
      let passing: Promise<number> | undefined;
      try {
        await trx('records').where({ id }).update({ updated_at: Date.now() });
        passing = a.reconcileLostJobs();
        await sleep(4 * ttl);
        expect(await redisAdmin.pttl(lockKey())).to.be.above(0);
        expect(await b.reconcileLostJobs()).to.equal(0);

        // the turn passes to another process (as after a pause longer than the TTL)
        await redisAdmin.set(lockKey(), 'another-process', 'PX', 60_000);
        await sleep(2 * ttl);
      } finally {
        await trx.commit();
        await passing?.catch(() => undefined); // the pass ends before the test cleans up
      }
      expect(await passing).to.equal(0);
      expect(await redisAdmin.get(lockKey())).to.equal('another-process');
      expect(await redisAdmin.pttl(lockKey())).to.be.above(50_000);
      expect(h.logs.some((l) => l.msg.startsWith('reconciler lost its turn'))).to.equal(true);
    });
  });
});
