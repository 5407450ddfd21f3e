import { expect } from 'chai';
import { createHarness, type Harness } from '../helpers/harness.js';

const rec = (i: number) => ({ source: 'import', category: `c${i % 3}`, payload: { priority: i % 6, i } });

describe('POST /records/batch', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  async function countRows(): Promise<number> {
    const [{ n }] = (await h.db.knex('records').count({ n: '*' })) as Array<{ n: number | string }>;
    return Number(n);
  }

  it('stores every record and answers 201 {items, count} in request order', async () => {
    const records = Array.from({ length: 25 }, (_, i) => rec(i));
    const res = await h.http.post('/records/batch').send({ records }).expect(201);
    expect(res.body.count).to.equal(25);
    expect(res.body.items).to.have.length(25);
    res.body.items.forEach((item: { payload: { i: number }; status: string }, i: number) => {
      expect(item.payload.i).to.equal(i);
      expect(item.status).to.equal('pending');
    });
    expect(await countRows()).to.equal(25);
    const one = await h.http.get(`/records/${res.body.items[7].id}`).expect(200);
    expect(one.body).to.deep.equal(res.body.items[7]);
    expect(await h.queue.count()).to.equal(0);
  });

  it('accepts 1,000 records and refuses 1,001 or none', async () => {
    await h.http
      .post('/records/batch')
      .send({ records: Array.from({ length: 1000 }, (_, i) => rec(i)) })
      .expect(201);
    const over = await h.http
      .post('/records/batch')
      .send({ records: Array.from({ length: 1001 }, (_, i) => rec(i)) })
      .expect(422);
    expect(over.body.error.code).to.equal('VALIDATION_ERROR');
    await h.http.post('/records/batch').send({ records: [] }).expect(422);
    await h.http.post('/records/batch').send({}).expect(422);
    await h.http
      .post('/records/batch')
      .send({ records: [rec(1)], extra: true })
      .expect(422);
    expect(await countRows()).to.equal(1000);
  });

  it('is all-or-nothing: invalid records are reported by index and nothing is stored', async () => {
    const records: unknown[] = Array.from({ length: 5 }, (_, i) => rec(i));
    records[2] = { source: '', category: 'c', payload: {} };
    records[4] = { source: 's', category: 'c', payload: 'not an object', colour: 'red' };
    const res = await h.http.post('/records/batch').send({ records }).expect(422);
    const fields = (res.body.error.details as Array<{ field: string }>).map((d) => d.field).sort();
    expect(fields).to.deep.equal(['body.records.2.source', 'body.records.4.colour', 'body.records.4.payload']);
    expect(await countRows()).to.equal(0);
  });

  it('?process=true queues all of them with one job each, and a worker takes them all to a terminal state', async () => {
    const records: object[] = Array.from({ length: 40 }, (_, i) => rec(i));
    records[3] = { ...rec(3), payload: { priority: 'soon' } };
    const res = await h.http
      .post('/records/batch?process=true')
      .set('X-Request-ID', 'batch-1')
      .send({ records })
      .expect(201);
    expect((await h.queue.getJobCounts('waiting')).waiting).to.equal(40);
    h.startWorker();
    for (const item of res.body.items as Array<{ id: string }>) await h.waitForTerminal(item.id);
    const summary = (await h.http.get('/reports/summary').expect(200)).body;
    expect(summary.totals).to.deep.equal({ all: 40, pending: 0, processed: 39, failed: 1 });
    const history = (await h.http.get(`/records/${res.body.items[0].id}/history`).expect(200)).body.items;
    expect(history[0]).to.include({ request_id: 'batch-1', to: 'processed' });
  });

  it('honours Idempotency-Key: a repeat replays the same items, another body is 422', async () => {
    const records = Array.from({ length: 3 }, (_, i) => rec(i));
    const first = await h.http.post('/records/batch').set('Idempotency-Key', 'import-9').send({ records }).expect(201);
    const again = await h.http.post('/records/batch').set('Idempotency-Key', 'import-9').send({ records }).expect(201);
    expect(again.headers['idempotent-replayed']).to.equal('true');
    expect(again.body).to.deep.equal(first.body);
    const other = await h.http
      .post('/records/batch')
      .set('Idempotency-Key', 'import-9')
      .send({ records: records.slice(1) })
      .expect(422);
    expect(other.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    expect(await countRows()).to.equal(3);
  });
});
