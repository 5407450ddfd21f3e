import { createHash } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import { expect } from 'chai';
import { parse } from 'csv-parse/sync';
import type { Processor } from '../../worker/processors/index.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const KEY = 'operator-key-1';
const FINGERPRINT = createHash('sha256').update(KEY).digest('hex').slice(0, 16);
// an error text a CSV writer must quote: a comma, quotes and a line break
const QUOTED_ERROR = 'upstream said "no", twice\nthen hung up';
const OTHER_ERROR = 'timeout, 5000 ms';

let passing = false;
/** Fails with the error the payload names until `passing` is set; then processes. */
const failAsTold: Processor = (record) => {
  if (!passing && typeof record.payload.fail === 'string') throw new UnrecoverableError(record.payload.fail);
  return { ok: true };
};

const input = (category: string, payload: Record<string, unknown>, source = 'crm') => ({ source, category, payload });

type CsvRow = Record<string, string>;
const parseCsv = (text: string): CsvRow[] => parse(text, { columns: true, record_delimiter: '\r\n' }) as CsvRow[];

describe('operator actions: bulk retry, failures, latency and CSV', function () {
  this.timeout(60_000);
  let h: Harness;

  async function createProcessed(records: Array<ReturnType<typeof input>>): Promise<string[]> {
    const res = await h.http.post('/records/batch?process=true').set('X-API-Key', KEY).send({ records }).expect(201);
    const ids = (res.body.items as Array<{ id: string }>).map((r) => r.id);
    for (const id of ids) await h.waitForTerminal(id);
    return ids;
  }

  beforeEach(async () => {
    passing = false;
    h = await createHarness({
      env: { API_KEYS: KEY },
      worker: true,
      processors: new Map([
        ['ops', failAsTold],
        ['billing', failAsTold],
      ]),
    });
  });
  afterEach(async () => {
    await h?.close();
  });

  describe('POST /records/retry', () => {
    it('retries exactly the failed records matching, each once, and names the key in their history', async () => {
      const quoted = await createProcessed([
        input('ops', { fail: QUOTED_ERROR }),
        input('ops', { fail: QUOTED_ERROR }),
        input('ops', { fail: QUOTED_ERROR }),
      ]);
      const [other] = await createProcessed([input('ops', { fail: OTHER_ERROR })]);
      const [elsewhere] = await createProcessed([input('billing', { fail: QUOTED_ERROR })]);
      const [done] = await createProcessed([input('ops', { ok: 1 })]);

      passing = true;
      const res = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .set('X-Request-ID', 'bulk-1')
        .send({ filter: { category: 'ops', error: QUOTED_ERROR } })
        .expect(202);
      expect(res.body).to.deep.equal({ retried: 3 });
      for (const id of quoted) expect(await h.waitForTerminal(id)).to.include({ status: 'processed' });
      for (const id of [other!, elsewhere!]) {
        expect((await h.http.get(`/records/${id}`).expect(200)).body.status).to.equal('failed');
      }
      expect((await h.http.get(`/records/${done}`).expect(200)).body.status).to.equal('processed');

      const history = (await h.http.get(`/records/${quoted[0]}/history`).expect(200)).body.items as Array<
        Record<string, unknown>
      >;
      const retry = history.find((t) => t.from === 'failed' && t.to === 'pending');
      expect(retry).to.include({ actor: FINGERPRINT, request_id: 'bulk-1' });
      expect(JSON.stringify(history)).not.to.include(KEY);
      // the worker's transitions have no actor
      expect(history.filter((t) => t !== retry).map((t) => t.actor)).to.deep.equal([null, null]);

      // the same filter again finds nothing left to retry
      const again = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { category: 'ops', error: QUOTED_ERROR } })
        .expect(202);
      expect(again.body).to.deep.equal({ retried: 0 });
    });

    it('honours limit (oldest first), error_contains and the created range', async () => {
      const first = await createProcessed([input('ops', { fail: OTHER_ERROR })]);
      const second = await createProcessed([input('ops', { fail: OTHER_ERROR })]);
      const [quoted] = await createProcessed([input('ops', { fail: QUOTED_ERROR })]);
      const created = (id: string) => h.http.get(`/records/${id}`).then((r) => r.body.created_at as string);

      // an empty range: nothing
      const before = await created(first[0]!);
      const none = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { created_before: before } })
        .expect(202);
      expect(none.body.retried).to.equal(0);

      const one = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { error_contains: '5000' }, limit: 1 })
        .expect(202);
      expect(one.body.retried).to.equal(1);
      expect((await h.waitForTerminal(first[0]!)).status).to.equal('failed');
      const history = (await h.http.get(`/records/${first[0]}/history`)).body.items as Array<{ to: string }>;
      expect(history.map((t) => t.to)).to.deep.equal(['failed', 'pending', 'failed']);
      expect((await h.http.get(`/records/${second[0]}/history`)).body.items).to.have.length(1);

      // case-sensitive substring; % and _ are not wildcards
      for (const text of ['TIMEOUT', '5%', 'time_out']) {
        const res = await h.http
          .post('/records/retry')
          .set('X-API-Key', KEY)
          .send({ filter: { error_contains: text } })
          .expect(202);
        expect(res.body.retried, text).to.equal(0);
      }
      const from = await created(quoted!);
      const ranged = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { created_after: from } })
        .expect(202);
      expect(ranged.body.retried).to.equal(1);
    });

    it('queues a large retry as it goes: every record of it reaches its outcome', async () => {
      const ids = await createProcessed(Array.from({ length: 600 }, (_, i) => input('ops', { fail: OTHER_ERROR, i })));
      passing = true;
      const res = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { error: OTHER_ERROR }, limit: 550 })
        .expect(202);
      expect(res.body.retried).to.equal(550);
      const done = async () => (await h.http.get('/reports/summary?category=ops').expect(200)).body.totals;
      for (let totals = await done(); totals.processed < 550; totals = await done()) {
        expect(totals.pending, 'pending').to.be.at.most(550);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await done()).to.include({ processed: 550, failed: 50, pending: 0 });
      // the oldest first: the last 50 created are the ones left failed
      const failed = (await h.http.get('/records?status=failed&category=ops&limit=200').expect(200)).body.items;
      expect(failed.map((r: { id: string }) => r.id).sort()).to.deep.equal(ids.slice(-50).sort());
    });

    it('needs a key, and refuses a bad filter or limit with 422', async () => {
      expectContractError(await h.http.post('/records/retry').send({ filter: {} }), 401, 'UNAUTHORIZED');
      const bad: unknown[] = [
        {},
        { filter: {}, limit: 0 },
        { filter: {}, limit: 10_001 },
        { filter: { status: 'failed' } },
        { filter: { created_after: 'yesterday' } },
        { filter: { created_after: '2026-02-02', created_before: '2026-02-01' } },
        { filter: { error_contains: '' } },
        { filter: {}, extra: true },
        [],
      ];
      for (const body of bad) {
        const res = await h.http
          .post('/records/retry')
          .set('X-API-Key', KEY)
          .send(body as object);
        expectContractError(res, 422, 'VALIDATION_ERROR');
      }
    });
  });

  describe('GET /reports/failures', () => {
    it('groups failed records by error, largest first, with counts and first/last seen', async () => {
      const quoted = await createProcessed([
        input('ops', { fail: QUOTED_ERROR }),
        input('ops', { fail: QUOTED_ERROR }),
        input('billing', { fail: QUOTED_ERROR }, 'erp'),
      ]);
      const [other] = await createProcessed([input('ops', { fail: OTHER_ERROR })]);
      await createProcessed([input('ops', { ok: 1 })]);
      const failedAt = async (ids: string[]) =>
        Promise.all(ids.map((id) => h.http.get(`/records/${id}`).then((r) => r.body.processed_at as string)));
      const quotedTimes = (await failedAt(quoted)).sort();

      const all = (await h.http.get('/reports/failures').expect(200)).body;
      expect(all).to.include({ total: 4, group_count: 2 });
      expect(all.filters).to.deep.equal({});
      expect(all.groups).to.deep.equal([
        { error: QUOTED_ERROR, count: 3, first_seen: quotedTimes[0], last_seen: quotedTimes[2] },
        {
          error: OTHER_ERROR,
          count: 1,
          first_seen: (await failedAt([other!]))[0],
          last_seen: (await failedAt([other!]))[0],
        },
      ]);

      const ops = (await h.http.get('/reports/failures?category=ops&limit=1').expect(200)).body;
      expect(ops).to.include({ total: 3, group_count: 2 });
      expect(ops.groups.map((g: { count: number }) => g.count)).to.deep.equal([2]);
      const erp = (await h.http.get('/reports/failures').query({ source: 'erp', error_contains: '"no"' })).body;
      expect(erp).to.include({ total: 1, group_count: 1 });
      expect(erp.filters).to.deep.equal({ source: 'erp', error_contains: '"no"' });
      const later = (await h.http.get('/reports/failures?created_after=2999-01-01').expect(200)).body;
      expect(later).to.include({ total: 0, group_count: 0 });
      expect(later.groups).to.deep.equal([]);

      // what the report counts for a group is what a retry of that group touches
      const res = await h.http
        .post('/records/retry')
        .set('X-API-Key', KEY)
        .send({ filter: { category: 'ops', error: all.groups[0].error } })
        .expect(202);
      expect(res.body.retried).to.equal(ops.groups[0].count);
    });

    it('refuses bad filters with 422', async () => {
      for (const query of ['limit=0', 'limit=501', 'status=failed', 'created_after=x', 'category=']) {
        expectContractError(await h.http.get(`/reports/failures?${query}`), 422, 'VALIDATION_ERROR');
      }
    });
  });

  describe('GET /reports/latency', () => {
    it('has the percentiles of the summary per bucket, from the counters (hours) and the records (minutes)', async () => {
      await createProcessed([input('ops', { ok: 1 }), input('ops', { fail: OTHER_ERROR }), input('lead', {})]);
      await h.http.post('/records').set('X-API-Key', KEY).send(input('ops', {})).expect(201); // pending
      const summary = (await h.http.get('/reports/summary').expect(200)).body;
      for (const bucket of ['minute', 'hour', 'day']) {
        const res = (await h.http.get(`/reports/latency?bucket=${bucket}`).expect(200)).body;
        expect(res.bucket).to.equal(bucket);
        const filled = res.series.filter((p: { count: number }) => p.count > 0);
        // the records were all created within a few seconds: one bucket, unless a boundary fell between them
        const counted = filled.reduce((n: number, p: { count: number }) => n + p.count, 0);
        expect(counted, bucket).to.equal(3);
        if (filled.length === 1) {
          const { p50, p95, p99 } = filled[0];
          expect({ p50, p95, p99 }, bucket).to.deep.equal(summary.latency_ms);
        }
      }
      const failed = (await h.http.get('/reports/latency?bucket=hour&status=failed&category=ops').expect(200)).body;
      expect(failed.series.reduce((n: number, p: { count: number }) => n + p.count, 0)).to.equal(1);
      expect(failed.filters).to.deep.equal({ status: 'failed', category: 'ops' });
      const pending = (await h.http.get('/reports/latency?status=pending').expect(200)).body;
      for (const p of pending.series) expect(p).to.include({ count: 0, p50: null, p95: null, p99: null });
      const empty = (await h.http.get('/reports/latency?category=none').expect(200)).body;
      expect(empty.series).to.deep.equal([]);
      const ranged = (
        await h.http.get('/reports/latency?bucket=hour&date_from=2026-01-01T00:00:00Z&date_to=2026-01-01T02:30:00Z')
      ).body;
      expect(ranged.series.map((p: { t: string }) => p.t)).to.deep.equal([
        '2026-01-01T00:00:00.000Z',
        '2026-01-01T01:00:00.000Z',
        '2026-01-01T02:00:00.000Z',
      ]);
    });

    it('refuses a bad bucket, format or a range of too many buckets with 422', async () => {
      for (const query of ['bucket=week', 'format=csv', 'bucket=minute&date_from=2026-01-01&date_to=2026-01-03']) {
        expectContractError(await h.http.get(`/reports/latency?${query}`), 422, 'VALIDATION_ERROR');
      }
    });
  });

  describe('CSV', () => {
    it('GET /records streams every matching record, past the page limit, as RFC 4180', async () => {
      const tricky = { note: 'a, "quoted"\r\nline', n: 1 };
      const batch = Array.from({ length: 1000 }, (_, i) => input('bulk', { i }, i % 2 ? 'odd' : 'even'));
      for (let i = 0; i < 2; i++) await h.http.post('/records/batch').set('X-API-Key', KEY).send({ records: batch });
      await h.http
        .post('/records/batch')
        .set('X-API-Key', KEY)
        .send({ records: batch.slice(0, 5) });
      await h.http
        .post('/records')
        .set('X-API-Key', KEY)
        .send(input('bulk', tricky, 'odd'))
        .expect(201);
      const [failed] = await createProcessed([input('ops', { fail: QUOTED_ERROR })]);

      const res = await h.http.get('/records?category=bulk&format=csv').expect(200);
      expect(res.headers['content-type']).to.match(/^text\/csv; charset=utf-8/);
      expect(res.headers['content-disposition']).to.equal('attachment; filename="records.csv"');
      const rows = parseCsv(res.text);
      expect(rows).to.have.length(2006);
      expect(Object.keys(rows[0]!)).to.deep.equal([
        'id',
        'source',
        'category',
        'status',
        'attempts',
        'error',
        'created_at',
        'updated_at',
        'processed_at',
        'payload',
        'result',
      ]);
      expect(new Set(rows.map((r) => r.id)).size).to.equal(2006);
      // newest first, as the JSON listing: the tricky one leads
      expect(JSON.parse(rows[0]!.payload!)).to.deep.equal(tricky);
      const page = (await h.http.get('/records?category=bulk&limit=200').expect(200)).body;
      expect(rows.slice(0, 200).map((r) => r.id)).to.deep.equal(page.items.map((r: { id: string }) => r.id));

      // Accept: text/csv, another filter and order: the same rows as the JSON pages
      const odd = await h.http
        .get('/records?source=odd&sort_by=created_at&sort_order=asc')
        .set('Accept', 'text/csv')
        .expect(200);
      const oddRows = parseCsv(odd.text);
      expect(oddRows).to.have.length(1003);
      expect(oddRows.every((r) => r.source === 'odd')).to.equal(true);

      const failedCsv = parseCsv((await h.http.get('/records?status=failed&format=csv').expect(200)).text);
      const record = (await h.http.get(`/records/${failed}`)).body;
      expect(failedCsv).to.deep.equal([
        {
          id: failed,
          source: 'crm',
          category: 'ops',
          status: 'failed',
          attempts: String(record.attempts),
          error: QUOTED_ERROR,
          created_at: record.created_at,
          updated_at: record.updated_at,
          processed_at: record.processed_at,
          payload: JSON.stringify({ fail: QUOTED_ERROR }),
          result: '',
        },
      ]);
      // a cursor: the rest of the listing after that page
      const firstPage = (await h.http.get('/records?source=odd&limit=3').expect(200)).body;
      const rest = parseCsv(
        (await h.http.get('/records').query({ source: 'odd', format: 'csv', cursor: firstPage.next_cursor })).text,
      );
      expect(rest).to.have.length(1000);
      // JSON stays the default, and ?format=json wins over Accept
      expect((await h.http.get('/records?limit=1').expect(200)).headers['content-type']).to.match(/json/);
      const json = await h.http.get('/records?limit=1&format=json').set('Accept', 'text/csv').expect(200);
      expect(json.body.items).to.have.length(1);
      expectContractError(await h.http.get('/records?format=xml'), 422, 'VALIDATION_ERROR');
    });

    it('the summary and the time series, as their JSON says', async () => {
      await createProcessed([input('a,"b"', { ok: 1 }), input('a,"b"', { fail: OTHER_ERROR }), input('lead', {})]);
      const summary = (await h.http.get('/reports/summary').expect(200)).body;
      const csv = parseCsv((await h.http.get('/reports/summary').set('Accept', 'text/csv').expect(200)).text);
      const n = (row: CsvRow) => ({ ...row, count: Number(row.count), pending: Number(row.pending) });
      expect(csv.map(n)[0]).to.deep.include({ category: '', count: summary.totals.all, pending: 0 });
      expect(csv.slice(1).map((r) => [r.category, Number(r.processed), Number(r.failed)])).to.deep.equal(
        summary.by_category.map((c: Record<string, unknown>) => [c.category, c.processed, c.failed]),
      );
      expect(csv.slice(1).map((r) => r.category)).to.include('a,"b"');

      const series = (await h.http.get('/reports/timeseries?bucket=minute').expect(200)).body.series;
      const seriesCsv = parseCsv((await h.http.get('/reports/timeseries?bucket=minute&format=csv').expect(200)).text);
      expect(seriesCsv).to.deep.equal(
        series.map((p: Record<string, unknown>) => ({
          t: p.t,
          created: String(p.created),
          processed: String(p.processed),
          failed: String(p.failed),
        })),
      );
      expectContractError(await h.http.get('/reports/summary?format=pdf'), 422, 'VALIDATION_ERROR');
    });
  });
});
