import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Processor } from '../../worker/processors/index.js';
import { Redis } from 'ioredis';
import { jobIdFor, warnUnlessAofAndNoEviction } from '../../shared/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startRedisServer } from '../helpers/redis-server.js';

const body = (n = 1) => ({ source: 'crm', category: 'lead', payload: { priority: n } });

async function countRecords(h: Harness): Promise<number> {
  const [{ n }] = (await h.db.knex('records').count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(n);
}

describe('guarantees', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  describe('Idempotency-Key on POST /records', () => {
    beforeEach(async () => {
      h = await createHarness();
    });

    it('twenty concurrent requests with one key create exactly one record and all get its response', async () => {
      const responses = await Promise.all(
        Array.from({ length: 20 }, () =>
          h.http.post('/records?process=true').set('Idempotency-Key', 'order-17').send(body()),
        ),
      );
      expect(responses.map((r) => r.status)).to.deep.equal(Array(20).fill(201));
      const ids = new Set(responses.map((r) => r.body.id as string));
      expect(ids.size).to.equal(1);
      expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).to.have.length(19);
      for (const r of responses) expect(r.headers.location).to.equal(`/records/${[...ids][0]}`);
      expect(await countRecords(h)).to.equal(1);
      expect((await h.queue.getJobCounts('waiting')).waiting).to.equal(1);
    });

    it('a repeat replays the first response; the same key with another body is 422 IDEMPOTENCY_KEY_REUSED', async () => {
      const first = await h.http.post('/records').set('Idempotency-Key', 'k-1').send(body(1)).expect(201);
      expect(first.headers['idempotent-replayed']).to.equal(undefined);
      const again = await h.http.post('/records').set('Idempotency-Key', 'k-1').send(body(1)).expect(201);
      expect(again.body).to.deep.equal(first.body);
      expect(again.headers['idempotent-replayed']).to.equal('true');

      const other = await h.http.post('/records').set('Idempotency-Key', 'k-1').send(body(2)).expect(422);
      expect(other.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
      const otherQuery = await h.http.post('/records?process=true').set('Idempotency-Key', 'k-1').send(body(1));
      expect(otherQuery.status).to.equal(422);
      expect(await countRecords(h)).to.equal(1);
      // a different key is a different request
      await h.http.post('/records').set('Idempotency-Key', 'k-2').send(body(1)).expect(201);
      expect(await countRecords(h)).to.equal(2);
    });

    it('a key over 255 characters or blank is 422 VALIDATION_ERROR', async () => {
      await h.http.post('/records').set('Idempotency-Key', 'x'.repeat(256)).send(body()).expect(422);
      await h.http.post('/records').set('Idempotency-Key', '   ').send(body()).expect(422);
      await h.http.post('/records').set('Idempotency-Key', 'x'.repeat(255)).send(body()).expect(201);
      expect(await countRecords(h)).to.equal(1);
    });

    it('keys expire after 24 hours and are pruned', async () => {
      await h.http.post('/records').set('Idempotency-Key', 'old').send(body()).expect(201);
      await h.db.knex('idempotency_responses').update({ created_at: Date.now() - 25 * 3600 * 1000 });
      const fresh = await h.http.post('/records').set('Idempotency-Key', 'new').send(body()).expect(201);
      expect(fresh.headers['idempotent-replayed']).to.equal(undefined);
      expect(await h.db.idempotency.prune()).to.equal(1);
      const keys = (await h.db.knex('idempotency_responses').select('key')) as Array<{ key: string }>;
      expect(keys.map((k) => k.key)).to.deep.equal(['new']);
    });
  });

  describe('POST /records/:id/retry', () => {
    it('sends a failed record round again under a new job id and answers 409 NOT_FAILED otherwise', async () => {
      let fail = true;
      const sometimes: Processor = () => {
        if (fail) throw new Error('upstream rejected');
        return { ok: true };
      };
      h = await createHarness({ worker: true, env: { MAX_ATTEMPTS: '1' }, processors: new Map([['lead', sometimes]]) });
      const created = await h.http.post('/records?process=true').send(body()).expect(201);
      const id = created.body.id as string;
      expect(await h.waitForTerminal(id)).to.include({ status: 'failed', error: 'upstream rejected' });

      fail = false;
      const retried = await h.http.post(`/records/${id}/retry`).set('X-Request-ID', 'operator-1').expect(202);
      expect(retried.body).to.include({ status: 'pending', error: null, attempts: 0 });
      expect(retried.headers.location).to.equal(`/records/${id}`);
      expect(await h.waitForTerminal(id)).to.include({ status: 'processed', error: null });

      const history = (await h.http.get(`/records/${id}/history`).expect(200)).body.items;
      expect(history.map((t: { from: string; to: string }) => `${t.from}->${t.to}`)).to.deep.equal([
        'pending->failed',
        'failed->pending',
        'pending->processed',
      ]);
      expect(history[0]).to.include({ job_id: jobIdFor(id, 1), error: 'upstream rejected' });
      expect(history[1]).to.include({ request_id: 'operator-1' });
      expect(history[2]).to.include({ job_id: jobIdFor(id, 2), request_id: 'operator-1' });

      const processedAgain = await h.http.post(`/records/${id}/retry`).expect(409);
      expect(processedAgain.body.error.code).to.equal('NOT_FAILED');
      const pending = await h.http.post('/records').send(body()).expect(201);
      expect((await h.http.post(`/records/${pending.body.id}/retry`).expect(409)).body.error.code).to.equal(
        'NOT_FAILED',
      );
      expect((await h.http.post('/records/nope/retry').expect(404)).body.error.code).to.equal('RECORD_NOT_FOUND');
    });
  });

  it('each transient failure is visible on the record while it waits for the next attempt', async () => {
    const broken: Processor = () => {
      throw new Error('timeout talking to scoring service');
    };
    h = await createHarness({
      worker: true,
      env: { RETRY_BACKOFF_MS: '60000' },
      processors: new Map([['lead', broken]]),
    });
    const created = await h.http.post('/records?process=true').send(body()).expect(201);
    const deadline = Date.now() + 10_000;
    let record = created.body;
    while (record.attempts === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      record = (await h.http.get(`/records/${created.body.id}`)).body;
    }
    expect(record).to.include({ status: 'pending', attempts: 1, error: 'timeout talking to scoring service' });
    expect(await h.queue.getJobCounts('delayed')).to.deep.equal({ delayed: 1 });
  });

  describe('reconciler', () => {
    beforeEach(async () => {
      h = await createHarness({ env: { RECONCILE_INTERVAL_MS: '200' } });
    });

    it('queues again a record whose intent is stored but whose job never reached Redis', async () => {
      const created = await h.http.post('/records?process=true').send(body()).expect(201);
      await h.queue.obliterate({ force: true });
      await h.db.knex('records').update({ queued_at: Date.now() - 1000 });
      const worker = h.startWorker();
      expect(await h.waitForTerminal(created.body.id)).to.include({ status: 'processed' });
      // the record can be processed before the pass that queued it again ends and logs what it did
      await worker.reconciler.stop();
      expect(h.logs.some((l) => l.msg === 'reconciler queued lost jobs again' && l.requeued === 1)).to.equal(true);
      const history = (await h.http.get(`/records/${created.body.id}/history`).expect(200)).body.items;
      expect(history).to.have.length(1);
      expect(await worker.reconciler.reconcileLostJobs()).to.equal(0);
    });

    it('queues again a record whose job finished without a transition, and leaves live jobs alone', async () => {
      const { worker, reconciler } = h.startWorker();
      await reconciler.stop(); // passes are driven by hand below
      const done = await h.http.post('/records?process=true').send(body()).expect(201);
      await h.waitForTerminal(done.body.id);
      // as if the job's last attempt finished while its transition could not be written
      await h.db
        .knex('records')
        .where({ id: done.body.id })
        .update({ status: 'pending', processed_at: null, queued_at: Date.now() - 1000 });
      await worker.pause();
      const live = await h.http.post('/records?process=true').send(body()).expect(201);
      await h.db
        .knex('records')
        .where({ id: live.body.id })
        .update({ queued_at: Date.now() - 1000 });
      await new Promise((r) => setTimeout(r, 250)); // let the lock of any earlier pass expire

      expect(await reconciler.reconcileLostJobs()).to.equal(1);
      worker.resume();
      expect(await h.waitForTerminal(done.body.id)).to.include({ status: 'processed' });
      expect(await h.waitForTerminal(live.body.id)).to.include({ status: 'processed' });
      const liveHistory = (await h.http.get(`/records/${live.body.id}/history`).expect(200)).body.items;
      expect(liveHistory).to.have.length(1);
    });
  });

  it('warns at start when Redis may lose jobs: maxmemory-policy is not noeviction, or AOF is off', async () => {
    const redis = await startRedisServer(); // --appendonly no
    const admin = new Redis(redis.url);
    try {
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      h = await createHarness({ env: { REDIS_URL: redis.url } });
      await warnUnlessAofAndNoEviction(admin, h.logger);
      const warning = h.logs.find((l) => l.msg.includes('maxmemory-policy is not noeviction'));
      expect(warning).to.include({ maxmemory_policy: 'allkeys-lru', level: 40 });
      const aof = h.logs.find((l) => l.msg.includes('without AOF'));
      expect(aof).to.include({ appendonly: 'no', level: 40 });
    } finally {
      admin.disconnect();
      await h.close();
      h = undefined as unknown as Harness;
      await redis.stop();
    }
  });

  it('says nothing at start when Redis has AOF and noeviction', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-aof-'));
    const redis = await startRedisServer(['--appendonly', 'yes', '--dir', dir]);
    const admin = new Redis(redis.url);
    try {
      h = await createHarness({ env: { REDIS_URL: redis.url } });
      await warnUnlessAofAndNoEviction(admin, h.logger);
      expect(h.logs.filter((l) => /AOF|maxmemory|persistence/.test(l.msg))).to.deep.equal([]);
    } finally {
      admin.disconnect();
      await h.close();
      h = undefined as unknown as Harness;
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says nothing above debug about persistence when Redis refuses CONFIG (as managed Redis often does)', async () => {
    const redis = await startRedisServer();
    const admin = new Redis(redis.url);
    try {
      h = await createHarness({ env: { REDIS_URL: redis.url } });
      // a user without the CONFIG command, as a managed Redis gives
      await admin.call('ACL', 'SETUSER', 'app', 'on', 'nopass', '~*', '&*', '+@all', '-config');
      const app = new Redis(redis.url, { username: 'app' });
      try {
        await warnUnlessAofAndNoEviction(app, h.logger);
      } finally {
        app.disconnect();
      }
      expect(h.logs.filter((l) => /AOF|maxmemory/.test(l.msg))).to.deep.equal([]);
      expect(h.logs.find((l) => l.msg === 'cannot read Redis persistence settings')).to.include({ level: 20 });
    } finally {
      admin.disconnect();
      await h.close();
      h = undefined as unknown as Harness;
      await redis.stop();
    }
  });

  describe('while Redis is down', () => {
    it('writes still succeed, /health is 503 naming the queue, and all is processed once Redis is back', async () => {
      const redis = await startRedisServer();
      try {
        h = await createHarness({ env: { REDIS_URL: redis.url, RECONCILE_INTERVAL_MS: '300' }, worker: true });
        await h.http.get('/health').expect(200);
        await redis.stop();

        const health = await h.http.get('/health').expect(503);
        expect(health.body.queue).to.deep.equal({ status: 'error' });
        expect(health.body.redis).to.deep.equal({ mode: 'standalone', primary: null });
        expect(health.body.database).to.deep.equal({ status: 'ok' });
        const created = await h.http.post('/records?process=true').send(body()).expect(201);
        const pending = await h.http.post('/records').send(body()).expect(201);
        await h.http.post(`/records/${pending.body.id}/process`).expect(202);

        await redis.start(); // empty: the jobs added while it was down never existed
        expect(await h.waitForTerminal(created.body.id, 15_000)).to.include({ status: 'processed' });
        expect(await h.waitForTerminal(pending.body.id, 15_000)).to.include({ status: 'processed' });
        await h.http.get('/health').expect(200);
      } finally {
        await h.close();
        h = undefined as unknown as Harness;
        await redis.stop();
      }
    });
  });
});
