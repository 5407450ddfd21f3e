import { expect } from 'chai';
import fc from 'fast-check';
import { contractErrorProblem } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

/**
 * Property: whatever query string a client sends to the listing and the time series, the
 * answer is 200 or a 422 in the contract's error shape, never a 5xx.
 */

const values = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '',
      '0',
      '-1',
      '1',
      '1.5',
      '200',
      '201',
      '10000',
      '10001',
      '1e309',
      '9007199254740993',
      'NaN',
      'pending',
      'failed',
      'created_at',
      'status',
      'category',
      'source',
      'asc',
      'desc',
      'minute',
      'hour',
      'day',
      'week',
      '2026-01-01',
      '2026-02-31',
      '2026-01-01T00:00:00Z',
      '+275760-09-13T00:00:00Z',
      '0000-01-01',
      'eyJ4IjoxfQ.AAAA',
      'W1sx',
      '.',
      '__proto__',
      '%00',
      '\u0000',
      '\ud800',
      'x'.repeat(129),
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
);

const keys = [
  'status',
  'category',
  'source',
  'created_after',
  'created_before',
  'sort_by',
  'sort_order',
  'limit',
  'offset',
  'cursor',
  'bucket',
  'date_from',
  'date_to',
  '__proto__',
  'other',
];

/** Percent-encoded; a lone surrogate, which has no UTF-8 form, as the bytes a client could still send. */
function encode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return '%ED%A0%80';
  }
}

const queryString = fc
  .array(fc.tuple(fc.constantFrom(...keys), values), { maxLength: 6 })
  .map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&'));

describe('fuzz: GET /records and GET /reports/timeseries', function () {
  this.timeout(120_000);
  let h: Harness;
  before(async () => {
    h = await createHarness();
    await h.db.records.insertRecords(
      Array.from({ length: 30 }, (_, i) => ({
        input: { category: `c${i % 3}`, source: `s${i % 2}`, payload: {} },
        process: false,
        requestId: null,
      })),
    );
  });
  after(async () => {
    await h.close();
  });

  for (const path of ['/records', '/reports/timeseries']) {
    it(`${path}: 300 random query strings answer 200 or 422`, async () => {
      let cursor: string | null = null;
      await fc.assert(
        fc.asyncProperty(queryString, fc.boolean(), async (query, withCursor) => {
          // a real cursor now and then, so the random filters meet a valid one
          const q = withCursor && cursor ? `${query}&cursor=${encodeURIComponent(cursor)}` : query;
          const res = await h.http.get(`${path}?${q}`);
          if (res.status === 200) {
            if (path === '/records') cursor = res.body.next_cursor ?? cursor;
            return;
          }
          expect(res.status, JSON.stringify(res.body)).to.equal(422);
          expect(contractErrorProblem(res)).to.equal(null);
        }),
        { numRuns: 300 },
      );
    });
  }
});
