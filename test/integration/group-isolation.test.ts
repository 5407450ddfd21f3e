import { expect } from 'chai';
import { UnrecoverableError } from 'bullmq';
import { dialectOf, jobIdFor, type JsonObject, type WorkflowRecord } from '../../shared/index.js';
import type { Processor } from '../../worker/processors/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const GROUP = 8; // the harness's WORKER_CONCURRENCY: every job of the group is active at once

/**
 * A processor that holds each job until GROUP jobs have started, then lets them all
 * finish in the same turn, so their outcomes go to the database as one group.
 * Later attempts (retries) pass straight through.
 */
function finishingTogether(outcome: (record: WorkflowRecord) => JsonObject): Processor {
  let started = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  // should the queue hand out fewer jobs at once, the test still ends (and fails on its attempts)
  setTimeout(() => release(), 5000).unref();
  return async (record) => {
    if (++started === GROUP) release();
    await released;
    return outcome(record);
  };
}

interface HistoryRow {
  record_id: string;
  to_status: string;
  attempt: number;
  error: string | null;
}

async function historyOf(h: Harness): Promise<Map<string, HistoryRow[]>> {
  const rows = (await h.db
    .knex('record_transitions')
    .select('record_id', 'to_status', 'attempt', 'error')
    .orderBy('id')) as HistoryRow[];
  const byRecord = new Map<string, HistoryRow[]>();
  for (const row of rows) byRecord.set(row.record_id, [...(byRecord.get(row.record_id) ?? []), row]);
  return byRecord;
}

/** Makes the database itself refuse to take the record `id` out of pending. */
async function refuseTransitionOf(h: Harness, id: string): Promise<void> {
  const { knex } = h.db;
  if (dialectOf(h.config.databaseUrl) === 'sqlite') {
    await knex.raw(`CREATE TRIGGER refuse_one BEFORE UPDATE ON records
      WHEN NEW.id = '${id}' AND NEW.status <> 'pending' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END`);
  } else {
    await knex.raw(`CREATE FUNCTION refuse_record() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN RAISE EXCEPTION 'refused by trigger'; END $$`);
    await knex.raw(`CREATE TRIGGER refuse_one BEFORE UPDATE ON records FOR EACH ROW
      WHEN (NEW.id = '${id}' AND NEW.status <> 'pending') EXECUTE FUNCTION refuse_record()`);
  }
}

/** Makes the database itself refuse to insert a record whose payload holds `"refuse":true`. */
async function refuseMarkedInserts(h: Harness): Promise<void> {
  const { knex } = h.db;
  if (dialectOf(h.config.databaseUrl) === 'sqlite') {
    await knex.raw(`CREATE TRIGGER refuse_marked BEFORE INSERT ON records
      WHEN NEW.payload LIKE '%"refuse":true%' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END`);
  } else {
    await knex.raw(`CREATE FUNCTION refuse_record() RETURNS trigger LANGUAGE plpgsql
      AS $$ BEGIN RAISE EXCEPTION 'refused by trigger'; END $$`);
    await knex.raw(`CREATE TRIGGER refuse_marked BEFORE INSERT ON records FOR EACH ROW
      WHEN (NEW.payload LIKE '%"refuse":true%') EXECUTE FUNCTION refuse_record()`);
  }
}

async function createPending(h: Harness, category: string): Promise<string[]> {
  const res = await h.http
    .post('/records/batch')
    .send({ records: Array.from({ length: GROUP }, (_, i) => ({ source: 's', category, payload: { i } })) })
    .expect(201);
  return (res.body.items as WorkflowRecord[]).map((r) => r.id);
}

const processAll = (h: Harness, ids: string[]) =>
  Promise.all(ids.map((id) => h.http.post(`/records/${id}/process`).expect(202)));

describe('a group commit the database refuses one item of', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('worker: the other outcomes of the group are written, each once; the refused record stays pending and is retried', async () => {
    h = await createHarness({
      worker: true,
      env: { MAX_ATTEMPTS: '3' },
      processors: new Map([['grouped', finishingTogether((r) => ({ n: r.payload.i ?? null }))]]),
    });
    const ids = await createPending(h, 'grouped');
    const refused = ids[5]!;
    await refuseTransitionOf(h, refused);
    await processAll(h, ids);

    const others = ids.filter((id) => id !== refused);
    for (const id of others) {
      const done = await h.waitForTerminal(id);
      // written by the first attempt: the refused outcome did not fail the group
      expect(done).to.include({ status: 'processed', attempts: 1 });
    }
    // BullMQ retries the refused record's job until its attempts run out
    const job = await h.queue.getJob(jobIdFor(refused, 1));
    for (const deadline = Date.now() + 10_000; !(await job!.isFailed());) {
      if (Date.now() > deadline) throw new Error('the refused job never ran out of attempts');
      await new Promise((r) => setTimeout(r, 20));
    }
    const failedJob = await h.queue.getJob(jobIdFor(refused, 1));
    expect(failedJob!.attemptsMade).to.equal(3);
    expect(failedJob!.failedReason).to.include('refused by trigger');

    expect((await h.db.records.findById(refused))!).to.include({ status: 'pending', error: null });
    const history = await historyOf(h);
    expect(history.has(refused)).to.equal(false);
    for (const id of others) expect(history.get(id)).to.have.length(1);
  });

  it('API: concurrent single creates grouped with a refused one are stored and answered 201; the refused one gets 500', async () => {
    h = await createHarness();
    await refuseMarkedInserts(h);
    // hold the database's write lock, so that the creates pile up behind a first one and go as one group
    const trx = await h.db.knex.transaction();
    if (dialectOf(h.config.databaseUrl) === 'postgres') await trx.raw('LOCK TABLE records IN EXCLUSIVE MODE');
    const first = h.http
      .post('/records')
      .send({ source: 's', category: 'c', payload: { n: 0 } })
      .then((res) => res);
    await new Promise((r) => setTimeout(r, 100));
    const payloads = Array.from({ length: GROUP }, (_, n) => (n === 3 ? { n: n + 1, refuse: true } : { n: n + 1 }));
    const grouped = Promise.all(
      payloads.map((payload) =>
        h.http
          .post('/records')
          .set('X-Request-ID', `create-${payload.n}`)
          .send({ source: 's', category: 'c', payload })
          .then((res) => res),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    await trx.commit();

    expect((await first).status).to.equal(201);
    const responses = await grouped;
    responses.forEach((res, n) => {
      if (n === 3) {
        expect(res.status).to.equal(500);
        expect(res.body).to.deep.equal({
          error: { code: 'INTERNAL_ERROR', message: 'Internal server error' },
          request_id: 'create-4',
        });
      } else {
        expect(res.status, JSON.stringify(res.body)).to.equal(201);
        expect(res.body.payload).to.deep.equal(payloads[n]);
      }
    });
    // the database's refusal is in the log of that request only, never in a body
    expect(h.logs.filter((l) => l.msg === 'unhandled error').map((l) => l.request_id)).to.deep.equal(['create-4']);
    const stored = (await h.db.knex('records').select('payload')) as Array<{ payload: string }>;
    expect(stored.map((r) => JSON.parse(r.payload) as { n: number }).map((p) => p.n)).to.have.members([
      0, 1, 2, 3, 5, 6, 7, 8,
    ]);
  });
});

describe('error texts a processor throws', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('are stored cleaned and cut to 2,000 characters, without failing the group they are written in', async () => {
    // a NUL (PostgreSQL's text refuses it) in a 10,000-character message
    const message = `upstream\u0000 said: ${'x'.repeat(10_000 - 'upstream\u0000 said: '.length)}`;
    const stored = `upstream said: ${'x'.repeat(2000 - 'upstream said: '.length)}`;
    let permanent = '';
    let transient = '';
    h = await createHarness({
      worker: true,
      env: { MAX_ATTEMPTS: '2' },
      processors: new Map([
        [
          'grouped',
          finishingTogether((r) => {
            if (r.id === permanent) throw new UnrecoverableError(message);
            if (r.id === transient) throw new Error(message);
            return { n: r.payload.i ?? null };
          }),
        ],
      ]),
    });
    const ids = await createPending(h, 'grouped');
    permanent = ids[2]!;
    transient = ids[6]!;
    await processAll(h, ids);

    for (const id of ids) {
      const done = await h.waitForTerminal(id);
      if (id === permanent) expect(done).to.include({ status: 'failed', attempts: 1, error: stored });
      else if (id === transient) expect(done).to.include({ status: 'failed', attempts: 2, error: stored });
      else expect(done).to.include({ status: 'processed', attempts: 1, error: null });
    }
    const history = await historyOf(h);
    for (const id of ids) {
      expect(history.get(id)).to.have.length(1);
      expect(history.get(id)![0]!.error).to.equal(id === permanent || id === transient ? stored : null);
    }
    const api = await h.http.get(`/records/${permanent}`).expect(200);
    expect(api.body.error).to.equal(stored);
  });

  it('are stored cleaned on the pending record while its job waits for the next attempt', async () => {
    const message = `flaky\u0000${'y'.repeat(9_994)}`;
    let release!: () => void;
    const secondAttempt = new Promise<void>((resolve) => (release = resolve));
    let attempts = 0;
    h = await createHarness({
      worker: true,
      processors: new Map([
        [
          'flaky',
          async () => {
            if (++attempts === 1) throw new Error(message);
            await secondAttempt;
            return { ok: true };
          },
        ],
      ]),
    });
    const res = await h.http
      .post('/records?process=true')
      .send({ source: 's', category: 'flaky', payload: {} })
      .expect(201);
    try {
      for (const deadline = Date.now() + 10_000; ;) {
        const record = (await h.db.records.findById(res.body.id as string))!;
        if (record.attempts === 1) {
          expect(record).to.include({ status: 'pending', error: `flaky${'y'.repeat(1995)}` });
          break;
        }
        if (Date.now() > deadline) throw new Error('the failed attempt was never recorded');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      // a failed wait still lets the job end, so the worker can close
      release();
    }
    expect(await h.waitForTerminal(res.body.id as string)).to.include({ status: 'processed', attempts: 2 });
  });
});
