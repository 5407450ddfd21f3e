import { expect } from 'chai';
import type { TerminalStatus } from '../../shared/index.js';
import { LATENCY_ERROR } from '../../shared/index.js';
import { atTime } from '../helpers/clock.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T = Date.UTC(2026, 0, 5, 10); // Monday 10:00 UTC

describe('GET /reports/timeseries and the summary latency', () => {
  let h: Harness;

  async function create(at: number, category: string, source: string): Promise<string> {
    const out = await atTime(at, () =>
      h.db.records.insertRecords([{ input: { category, source, payload: {} }, process: true, requestId: null }]),
    );
    if (out.replayed) throw new Error('unexpected replay');
    return out.records[0]!.id;
  }

  async function finish(at: number, recordId: string, to: TerminalStatus, seq = 1): Promise<void> {
    const [applied] = await atTime(at, () =>
      h.db.transitions.applyTransitions([{ recordId, seq, to, attempt: 1, requestId: null, jobId: null }]),
    );
    expect(applied).to.equal(true);
  }

  beforeEach(async () => {
    h = await createHarness();
    // r1 processed 2 s after creation
    await finish(T + 5 * MINUTE + 2000, await create(T + 5 * MINUTE, 'a', 'web'), 'processed');
    // r2 failed an hour after creation, in the next hour
    await finish(T + 70 * MINUTE, await create(T + 10 * MINUTE, 'a', 'api'), 'failed');
    // r3 still pending
    await create(T + 65 * MINUTE, 'b', 'api');
    // r4 the next day, processed after 500 ms
    await finish(T + 27 * HOUR + 500, await create(T + 27 * HOUR, 'b', 'web'), 'processed');
    // r5 failed at 10:06, retried at 12:00, processed at 12:01: its failure no longer counts
    const r5 = await create(T + 5 * MINUTE, 'a', 'web');
    await finish(T + 6 * MINUTE, r5, 'failed');
    await atTime(T + 2 * HOUR, () => h.db.transitions.retry(r5, null));
    await finish(T + 2 * HOUR + MINUTE, r5, 'processed', 2);
  });
  afterEach(async () => {
    await h.close();
  });

  const series = async (query: Record<string, string>) =>
    (await h.http.get('/reports/timeseries').query(query).expect(200)).body;
  const point = (t: number, created: number, processed: number, failed: number) => ({
    t: new Date(t).toISOString(),
    created,
    processed,
    failed,
  });

  it('counts per hour: created by created_at, processed and failed by when the record reached that status', async () => {
    const body = await series({ bucket: 'hour', date_from: '2026-01-05T10:00:00Z', date_to: '2026-01-05T13:59:59Z' });
    expect(body.bucket).to.equal('hour');
    expect(body.series).to.deep.equal([
      point(T, 3, 1, 0),
      point(T + HOUR, 1, 0, 1),
      point(T + 2 * HOUR, 0, 1, 0),
      point(T + 3 * HOUR, 0, 0, 0),
    ]);
  });

  it('covers whole buckets: the bucket holding date_from through the one holding date_to', async () => {
    const body = await series({ date_from: '2026-01-05T10:59:00Z', date_to: '2026-01-05T11:00:00Z' });
    expect(body.bucket).to.equal('hour');
    expect(body.series).to.deep.equal([point(T, 3, 1, 0), point(T + HOUR, 1, 0, 1)]);
  });

  it('counts per UTC day and per minute', async () => {
    const days = await series({ bucket: 'day', date_from: '2026-01-04', date_to: '2026-01-07' });
    const day = Date.UTC(2026, 0, 4);
    expect(days.series).to.deep.equal([
      point(day, 0, 0, 0),
      point(day + 24 * HOUR, 4, 2, 1),
      point(day + 48 * HOUR, 1, 1, 0),
      point(day + 72 * HOUR, 0, 0, 0),
    ]);
    const minutes = await series({
      bucket: 'minute',
      date_from: '2026-01-05T10:04:00Z',
      date_to: '2026-01-05T10:07:30Z',
    });
    expect(minutes.series).to.deep.equal([
      point(T + 4 * MINUTE, 0, 0, 0),
      point(T + 5 * MINUTE, 2, 1, 0),
      point(T + 6 * MINUTE, 0, 0, 0),
      point(T + 7 * MINUTE, 0, 0, 0),
    ]);
  });

  it('applies the status, category and source filters', async () => {
    const range = { date_from: '2026-01-05T10:00:00Z', date_to: '2026-01-05T12:59:59Z' };
    expect((await series({ ...range, status: 'failed' })).series).to.deep.equal([
      point(T, 1, 0, 0),
      point(T + HOUR, 0, 0, 1),
      point(T + 2 * HOUR, 0, 0, 0),
    ]);
    expect((await series({ ...range, category: 'b' })).series).to.deep.equal([
      point(T, 0, 0, 0),
      point(T + HOUR, 1, 0, 0),
      point(T + 2 * HOUR, 0, 0, 0),
    ]);
    expect((await series({ ...range, source: 'web', status: 'processed' })).series).to.deep.equal([
      point(T, 2, 1, 0),
      point(T + HOUR, 0, 0, 0),
      point(T + 2 * HOUR, 0, 1, 0),
    ]);
  });

  it('without dates, spans the hours that hold matching records, empty buckets included', async () => {
    const body = await series({});
    expect(body.series).to.have.length(28);
    expect(body.series[0]).to.deep.equal(point(T, 3, 1, 0));
    expect(body.series[27]).to.deep.equal(point(T + 27 * HOUR, 1, 1, 0));
    expect(body.series.reduce((n: number, p: { created: number }) => n + p.created, 0)).to.equal(5);
    expect((await series({ category: 'nothing' })).series).to.deep.equal([]);
  });

  for (const [what, query] of [
    ['an unknown bucket', 'bucket=week'],
    ['more than 1,440 minutes', 'bucket=minute&date_from=2026-01-01&date_to=2026-01-02'],
    ['an open range of more than 1,440 minutes', 'bucket=minute'],
    ['more than 2,160 hours', 'bucket=hour&date_from=2025-01-01&date_to=2025-12-31'],
    ['date_from after date_to', 'date_from=2026-02-01&date_to=2026-01-01'],
    ['a malformed date', 'date_to=soon'],
    ['a repeated bucket', 'bucket=hour&bucket=day'],
    ['an unknown parameter', 'interval=hour'],
  ]) {
    it(`answers 422 VALIDATION_ERROR for ${what}`, async () => {
      const res = await h.http.get(`/reports/timeseries?${query}`);
      expectContractError(res, 422, 'VALIDATION_ERROR');
      expect(res.body.error.details).to.be.an('array').that.is.not.empty;
    });
  }

  describe('latency_ms in the summary', () => {
    /** Within the documented bound of the exact nearest-rank value. */
    function expectNear(actual: number | null, exact: number) {
      expect(actual).to.be.a('number');
      expect(Math.abs(actual! - exact)).to.be.at.most(LATENCY_ERROR.relative * exact + LATENCY_ERROR.absolute_ms);
    }

    it('is p50/p95/p99 of created → terminal over the terminal records matched', async () => {
      const { body } = await h.http.get('/reports/summary').expect(200);
      // terminal latencies: 500 ms, 2 s, 1 h, 1 h 56 min (r5, from creation to its final outcome)
      expectNear(body.latency_ms.p50, 2000);
      expectNear(body.latency_ms.p95, 116 * MINUTE);
      expectNear(body.latency_ms.p99, 116 * MINUTE);
      const b = (await h.http.get('/reports/summary?category=b').expect(200)).body;
      for (const p of ['p50', 'p95', 'p99']) expectNear(b.latency_ms[p], 500);
      const failed = (await h.http.get('/reports/summary?status=failed').expect(200)).body;
      expectNear(failed.latency_ms.p50, HOUR);
      const january6 = (await h.http.get('/reports/summary?date_from=2026-01-06').expect(200)).body;
      expectNear(january6.latency_ms.p99, 500);
    });

    it('is null when no terminal record matches', async () => {
      for (const query of ['status=pending', 'category=nothing', 'date_from=2026-02-01']) {
        const { body } = await h.http.get(`/reports/summary?${query}`).expect(200);
        expect(body.latency_ms, query).to.deep.equal({ p50: null, p95: null, p99: null });
      }
    });
  });
});
