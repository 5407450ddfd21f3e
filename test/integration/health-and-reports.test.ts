import { expect } from 'chai';
import { MAX_SUMMARY_CATEGORIES, rebuildReportCounts } from '../../shared/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { DocumentedResponses } from '../helpers/openapi.js';

describe('health, version and the summary report', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it('GET /health reports the database and queue', async () => {
    await h.http.post('/records?process=true').send({ source: 's', category: 'c', payload: {} }).expect(201);
    const res = await h.http.get('/health').expect(200);
    expect(res.body).to.deep.equal({
      service: 'ok',
      version: '0.0.0-test',
      database: { status: 'ok' },
      queue: { status: 'ok', waiting: 1, active: 0, failed: 0, workers: 0 },
      redis: { mode: 'standalone', primary: `127.0.0.1:${new URL(h.config.redisUrl).port}` },
    });
  });

  it('GET /health answers 503 naming the database when it cannot be reached', async () => {
    await h.db.close();
    const res = await h.http.get('/health').expect(503);
    expect(res.body.database).to.deep.equal({ status: 'error' });
    expect(res.body.queue.status).to.equal('ok');
    h.db.close = async () => undefined;
  });

  it('GET /health/live and GET /version', async () => {
    expect((await h.http.get('/health/live').expect(200)).body).to.deep.equal({ status: 'ok' });
    expect((await h.http.get('/version').expect(200)).body).to.deep.equal({
      version: '0.0.0-test',
      commit: 'test',
      environment: 'development',
    });
  });

  describe('GET /reports/summary', () => {
    async function seed(rows: Array<{ category: string; source: string; status: string; created: string }>) {
      for (const r of rows) {
        const res = await h.http
          .post('/records')
          .send({ source: r.source, category: r.category, payload: {} })
          .expect(201);
        await h.db
          .knex('records')
          .where({ id: res.body.id })
          .update({ status: r.status, created_at: Date.parse(r.created) });
      }
      // the rows were edited behind the write paths' back: count them again, as an operator would
      await rebuildReportCounts(h.db.knex);
    }

    beforeEach(async () => {
      await seed([
        { category: 'a', source: 'web', status: 'pending', created: '2026-01-01T10:00:00Z' },
        { category: 'a', source: 'web', status: 'processed', created: '2026-01-02T10:00:00Z' },
        { category: 'a', source: 'api', status: 'failed', created: '2026-01-03T10:00:00Z' },
        { category: 'b', source: 'api', status: 'processed', created: '2026-01-03T23:59:59Z' },
        { category: 'b', source: 'api', status: 'processed', created: '2026-01-04T00:00:00Z' },
      ]);
    });

    it('totals and per-category counts by status', async () => {
      const res = await h.http.get('/reports/summary').expect(200);
      expect(res.body.totals).to.deep.equal({ all: 5, pending: 1, processed: 3, failed: 1 });
      expect(res.body.by_category).to.deep.equal([
        { category: 'a', count: 3, pending: 1, processed: 1, failed: 1 },
        { category: 'b', count: 2, pending: 0, processed: 2, failed: 0 },
      ]);
      expect(res.body).to.include({ category_count: 2, categories_omitted: 0 });
      expect(res.body.filters).to.deep.equal({});
      expect(Date.parse(res.body.generated_at)).to.be.closeTo(Date.now(), 5000);
    });

    it('filters by status, category, source and an inclusive date range', async () => {
      const get = async (q: string) => (await h.http.get(`/reports/summary?${q}`).expect(200)).body;
      expect((await get('status=processed')).totals).to.deep.equal({ all: 3, pending: 0, processed: 3, failed: 0 });
      expect((await get('category=b')).totals.all).to.equal(2);
      expect((await get('source=api&category=a')).totals).to.deep.equal({
        all: 1,
        pending: 0,
        processed: 0,
        failed: 1,
      });
      // a date alone as the upper bound covers that whole day
      expect((await get('date_from=2026-01-02&date_to=2026-01-03')).totals.all).to.equal(3);
      expect((await get('date_from=2026-01-03T12:00:00Z')).totals.all).to.equal(2);
      const body = await get('date_from=2026-01-02&date_to=2026-01-03&status=processed');
      expect(body.filters).to.deep.equal({
        status: 'processed',
        date_from: '2026-01-02T00:00:00.000Z',
        date_to: '2026-01-03T23:59:59.999Z',
      });
    });

    it('lists the first 1,000 categories by name, and says how many there are in all', async () => {
      // three more categories than a summary lists, one record each, in another order than their names'
      const names = Array.from(
        { length: MAX_SUMMARY_CATEGORIES + 3 },
        (_, i) => `k${String((i * 7919) % 1003).padStart(4, '0')}`,
      );
      const out = await h.db.records.insertRecords(
        names.map((category) => ({ input: { category, source: 's', payload: {} }, process: false, requestId: null })),
      );
      expect(out.replayed).to.equal(false);
      const res = await h.http.get('/reports/summary').expect(200);
      const docs = new DocumentedResponses((await h.http.get('/openapi.json').expect(200)).body);
      expect(docs.problem('GET', '/reports/summary', res)).to.equal(null);
      const all = ['a', 'b', ...names].sort();
      expect(res.body.by_category.map((c: { category: string }) => c.category)).to.deep.equal(
        all.slice(0, MAX_SUMMARY_CATEGORIES),
      );
      expect(res.body).to.include({
        category_count: all.length,
        categories_omitted: all.length - MAX_SUMMARY_CATEGORIES,
      });
      // the totals count every category, listed or not
      expect(res.body.totals).to.deep.equal({
        all: 5 + names.length,
        pending: 1 + names.length,
        processed: 3,
        failed: 1,
      });
      // one left out is there when asked for by name
      const last = all[all.length - 1]!;
      const one = (await h.http.get('/reports/summary').query({ category: last }).expect(200)).body;
      expect(one).to.include({ category_count: 1, categories_omitted: 0 });
      expect(one.by_category).to.deep.equal([{ category: last, count: 1, pending: 1, processed: 0, failed: 0 }]);
    });

    for (const [what, query] of [
      ['an unknown status', 'status=done'],
      ['a malformed date', 'date_from=yesterday'],
      ['an impossible date', 'date_to=2026-02-31T00:00:00Z'],
      ['date_from after date_to', 'date_from=2026-02-01&date_to=2026-01-01'],
      ['a repeated parameter', 'status=pending&status=failed'],
      ['an unknown parameter', 'colour=red'],
    ]) {
      it(`answers 422 VALIDATION_ERROR for ${what}`, async () => {
        const res = await h.http.get(`/reports/summary?${query}`).expect(422);
        expect(res.body.error.code).to.equal('VALIDATION_ERROR');
        expect(res.body.error.details).to.be.an('array').that.is.not.empty;
      });
    }
  });
});
