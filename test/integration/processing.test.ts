import { expect } from 'chai';
import { UnrecoverableError } from 'bullmq';
import type { Processor } from '../../worker/processors/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const record = (payload: Record<string, unknown> = { priority: 3 }, category = 'lead') => ({
  source: 'crm',
  category,
  payload,
});

describe('processing through the worker', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  describe('with the default processor', () => {
    beforeEach(async () => {
      h = await createHarness({ worker: true });
    });

    it('POST /records?process=true takes a record to processed with its result and history', async () => {
      const res = await h.http.post('/records?process=true').set('X-Request-ID', 'submit-1').send(record()).expect(201);
      const done = await h.waitForTerminal(res.body.id);
      expect(done).to.include({ status: 'processed', error: null, attempts: 1 });
      expect(done.result).to.deep.equal({ classification: 'medium', score: 3 });
      expect(done.processed_at).to.be.a('string');

      const history = await h.http.get(`/records/${res.body.id}/history`).expect(200);
      expect(history.body.items).to.have.length(1);
      expect(history.body.items[0]).to.include({
        from: 'pending',
        to: 'processed',
        attempt: 1,
        error: null,
        request_id: 'submit-1',
        job_id: `${res.body.id}-1`,
      });
      // the worker's log line for the transition carries the originating request id
      const line = h.logs.find((l) => l.msg === 'transition' && l.record_id === res.body.id);
      expect(line).to.include({ request_id: 'submit-1', from: 'pending', to: 'processed', attempt: 1 });
    });

    it('fails a record whose priority is not a number, without retrying', async () => {
      const res = await h.http
        .post('/records?process=true')
        .send(record({ priority: 'urgent' }))
        .expect(201);
      const done = await h.waitForTerminal(res.body.id);
      expect(done).to.include({ status: 'failed', error: 'invalid priority', attempts: 1, result: null });
    });

    it('POST /records/:id/process answers 202 + Location, then the record is processed', async () => {
      const created = await h.http
        .post('/records')
        .send(record({ priority: '4' }))
        .expect(201);
      expect(created.body.status).to.equal('pending');
      const res = await h.http.post(`/records/${created.body.id}/process`).expect(202);
      expect(res.headers.location).to.equal(`/records/${created.body.id}`);
      const done = await h.waitForTerminal(created.body.id);
      expect(done.result).to.deep.equal({ classification: 'high', score: 4 });
    });

    it('Prefer: wait=N answers 200 with the final record when it finishes in time', async () => {
      const created = await h.http.post('/records').send(record({})).expect(201);
      const res = await h.http.post(`/records/${created.body.id}/process`).set('Prefer', 'wait=10').expect(200);
      expect(res.body).to.include({ id: created.body.id, status: 'processed' });
      expect(res.body.result).to.deep.equal({ classification: 'low', score: 0 });
    });

    it('a second process call answers 409 ALREADY_PROCESSED with "record is not pending"', async () => {
      const created = await h.http.post('/records?process=true').send(record()).expect(201);
      await h.waitForTerminal(created.body.id);
      const res = await h.http.post(`/records/${created.body.id}/process`).expect(409);
      expect(res.body.error).to.deep.equal({ code: 'ALREADY_PROCESSED', message: 'record is not pending' });
    });

    it('process on an unknown or malformed id answers 404 RECORD_NOT_FOUND', async () => {
      await h.http.post('/records/00000000-0000-4000-8000-000000000000/process').expect(404);
      const res = await h.http.post('/records/nope/process').expect(404);
      expect(res.body.error.code).to.equal('RECORD_NOT_FOUND');
      expect((await h.http.get('/records/nope/history').expect(404)).body.error.code).to.equal('RECORD_NOT_FOUND');
    });
  });

  it('of 25 concurrent process calls exactly one is accepted and one transition is written', async () => {
    h = await createHarness();
    const created = await h.http.post('/records').send(record()).expect(201);
    const responses = await Promise.all(
      Array.from({ length: 25 }, () => h.http.post(`/records/${created.body.id}/process`)),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 202)).to.have.length(1);
    expect(statuses.filter((s) => s === 409)).to.have.length(24);
    for (const r of responses.filter((x) => x.status === 409)) expect(r.body.error.code).to.equal('ALREADY_QUEUED');

    h.startWorker();
    await h.waitForTerminal(created.body.id);
    const again = await Promise.all(
      Array.from({ length: 5 }, () => h.http.post(`/records/${created.body.id}/process`)),
    );
    expect(again.map((r) => r.status)).to.deep.equal([409, 409, 409, 409, 409]);
    const history = await h.http.get(`/records/${created.body.id}/history`).expect(200);
    expect(history.body.items.map((i: { to: string }) => i.to)).to.deep.equal(['processed']);
    expect(await h.queue.getJobCounts('completed')).to.deep.equal({ completed: 1 });
  });

  it('a redelivered job (same record, same queueing) leaves exactly one transition', async () => {
    h = await createHarness();
    const created = await h.http.post('/records?process=true').send(record()).expect(201);
    const id = created.body.id as string;
    // the same queueing delivered again under other job ids, as after a lost lock or a crash
    for (const extra of ['dup-a', 'dup-b', 'dup-c']) {
      await h.queue.add('process-record', { recordId: id, seq: 1, requestId: null }, { jobId: `${id}-${extra}` });
    }
    h.startWorker();
    await h.waitForTerminal(id);
    await waitFor(async () => (await h.queue.getJobCounts('completed')).completed === 4);
    const history = await h.http.get(`/records/${id}/history`).expect(200);
    expect(history.body.items).to.have.length(1);
    expect(
      h.logs.filter((l) => l.msg.startsWith('job skipped') || l.msg.startsWith('transition skipped')),
    ).to.have.length(3);
  });

  it('retries a transient error with backoff, then processes the record', async () => {
    let calls = 0;
    const flaky: Processor = () => {
      calls += 1;
      if (calls < 3) throw new Error(`downstream timeout ${calls}`);
      return { ok: true };
    };
    h = await createHarness({ worker: true, processors: new Map([['flaky', flaky]]) });
    const created = await h.http.post('/records?process=true').send(record({}, 'flaky')).expect(201);
    const done = await h.waitForTerminal(created.body.id);
    expect(done).to.include({ status: 'processed', attempts: 3, error: null });
    expect(done.result).to.deep.equal({ ok: true });
  });

  it('fails the record with the last error after MAX_ATTEMPTS transient failures', async () => {
    let calls = 0;
    const broken: Processor = () => {
      calls += 1;
      throw new Error(`downstream down (call ${calls})`);
    };
    h = await createHarness({ worker: true, env: { MAX_ATTEMPTS: '3' }, processors: new Map([['broken', broken]]) });
    const created = await h.http.post('/records?process=true').send(record({}, 'broken')).expect(201);
    const done = await h.waitForTerminal(created.body.id);
    expect(done).to.include({ status: 'failed', attempts: 3, error: 'downstream down (call 3)' });
    expect(calls).to.equal(3);
    const history = await h.http.get(`/records/${created.body.id}/history`).expect(200);
    expect(history.body.items).to.have.length(1);
    expect(history.body.items[0]).to.include({ to: 'failed', attempt: 3, error: 'downstream down (call 3)' });
  });

  it("a processor's UnrecoverableError fails the record at once", async () => {
    let calls = 0;
    const strict: Processor = () => {
      calls += 1;
      throw new UnrecoverableError('missing customer id');
    };
    h = await createHarness({ worker: true, processors: new Map([['strict', strict]]) });
    const created = await h.http.post('/records?process=true').send(record({}, 'strict')).expect(201);
    const done = await h.waitForTerminal(created.body.id);
    expect(done).to.include({ status: 'failed', attempts: 1, error: 'missing customer id' });
    expect(calls).to.equal(1);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
