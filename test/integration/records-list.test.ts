import { expect } from 'chai';
import { rebuildReportCounts, type RecordStatus, type WorkflowRecord } from '../../shared/index.js';
import { atTime } from '../helpers/clock.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const T0 = Date.UTC(2026, 0, 5, 9, 30);
const MINUTE = 60_000;

interface Seeded {
  id: string;
  category: string;
  source: string;
  status: RecordStatus;
  created_at: number;
}

const SORTS = ['created_at', 'status', 'category', 'source'] as const;

/** The listing's order, computed here from what was seeded: sort field, created_at, id. */
function ordered(rows: readonly Seeded[], sortBy: (typeof SORTS)[number], order: 'asc' | 'desc'): string[] {
  const key = (r: Seeded) => [...(sortBy === 'created_at' ? [] : [r[sortBy]]), r.created_at, r.id];
  const sorted = [...rows].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    return 0;
  });
  return (order === 'asc' ? sorted : sorted.reverse()).map((r) => r.id);
}

describe('GET /records', () => {
  let h: Harness;
  let seeded: Seeded[];

  /** Records created at chosen times through the write path, then some moved to a terminal state. */
  async function seed(): Promise<Seeded[]> {
    const out: Seeded[] = [];
    const categories = ['alpha', 'beta', 'gamma'];
    const sources = ['crm', 'web'];
    for (let i = 0; i < 24; i++) {
      // every third record shares its created_at with the one before: the id breaks the tie
      const at = T0 + (i - Math.floor(i / 3)) * 7 * MINUTE;
      const input = { category: categories[i % 3]!, source: sources[Math.floor(i / 2) % 2]!, payload: { i } };
      const res = await atTime(at, () => h.db.records.insertRecords([{ input, process: true, requestId: null }]));
      if (res.replayed) throw new Error('unexpected replay');
      out.push({ id: res.records[0]!.id, ...input, status: 'pending', created_at: at });
    }
    const finish = out.filter((_, i) => i % 4 !== 0);
    await h.db.transitions.applyTransitions(
      finish.map((r, i) => ({
        recordId: r.id,
        seq: 1,
        to: i % 3 === 0 ? 'failed' : 'processed',
        attempt: 1,
        requestId: null,
        jobId: null,
        error: i % 3 === 0 ? 'boom' : null,
      })),
    );
    finish.forEach((r, i) => (r.status = i % 3 === 0 ? 'failed' : 'processed'));
    return out;
  }

  before(async () => {
    h = await createHarness();
    seeded = await seed();
  });
  after(async () => {
    await h.close();
  });

  const get = async (query: Record<string, string | number>) =>
    (await h.http.get('/records').query(query).expect(200)).body;

  /** Every page from the first, following next_cursor. */
  async function walk(
    query: Record<string, string | number>,
    between?: () => Promise<void>,
  ): Promise<WorkflowRecord[]> {
    const items: WorkflowRecord[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const body = await get(cursor ? { ...query, cursor } : query);
      items.push(...body.items);
      cursor = body.next_cursor;
      if (!cursor) return items;
      await between?.();
    }
    throw new Error('more than 100 pages');
  }

  it('answers newest first, 50 at most, with count, total, limit and next_cursor', async () => {
    const body = await get({});
    expect(Object.keys(body).sort()).to.deep.equal(['count', 'items', 'limit', 'next_cursor', 'total']);
    expect(body).to.include({ count: 24, total: 24, limit: 50, next_cursor: null });
    expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(ordered(seeded, 'created_at', 'desc'));
    const first = body.items[0] as WorkflowRecord;
    const stored = (await h.http.get(`/records/${first.id}`).expect(200)).body;
    expect(first).to.deep.equal(stored);
  });

  for (const [filter, value, match] of [
    ['status', 'failed', (r: Seeded) => r.status === 'failed'],
    ['status', 'pending', (r: Seeded) => r.status === 'pending'],
    ['category', 'beta', (r: Seeded) => r.category === 'beta'],
    ['source', 'web', (r: Seeded) => r.source === 'web'],
    ['created_after', new Date(T0 + 70 * MINUTE).toISOString(), (r: Seeded) => r.created_at >= T0 + 70 * MINUTE],
    ['created_before', new Date(T0 + 70 * MINUTE).toISOString(), (r: Seeded) => r.created_at < T0 + 70 * MINUTE],
    ['category', 'nothing', () => false],
  ] as const) {
    it(`filters by ${filter}=${value}`, async () => {
      const expected = ordered(seeded.filter(match), 'created_at', 'desc');
      expect(expected.length).to.be.below(seeded.length);
      const body = await get({ [filter]: value });
      expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(expected);
      expect(body).to.include({ total: expected.length, count: expected.length });
    });
  }

  it('combines filters, a date alone meaning its midnight (UTC)', async () => {
    const body = await get({
      status: 'processed',
      source: 'crm',
      created_after: '2026-01-05',
      created_before: '2026-01-06',
    });
    const expected = seeded.filter((r) => r.status === 'processed' && r.source === 'crm');
    expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(ordered(expected, 'created_at', 'desc'));
    expect((await get({ created_before: '2026-01-05' })).total).to.equal(0);
  });

  it('an empty range (created_after equal to created_before) lists nothing, with total 0', async () => {
    const body = await get({ created_after: '2026-01-05T09:40:00Z', created_before: '2026-01-05T09:40:00Z' });
    expect(body.items).to.deep.equal([]);
    expect(body.total).to.equal(0);
  });

  for (const sortBy of SORTS) {
    for (const order of ['asc', 'desc'] as const) {
      it(`sorts by ${sortBy} ${order}, ties broken by created_at then id; a cursor walk returns exactly that order`, async () => {
        const expected = ordered(seeded, sortBy, order);
        const body = await get({ sort_by: sortBy, sort_order: order });
        expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(expected);
        const walked = await walk({ sort_by: sortBy, sort_order: order, limit: 5 });
        expect(walked.map((r) => r.id)).to.deep.equal(expected);
      });
    }
  }

  it('walks a filtered listing page by page, each page reporting the same total', async () => {
    const crm = seeded.filter((r) => r.source === 'crm');
    const totals = new Set<number>();
    const items: string[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string | number> = {
        sort_by: 'category',
        sort_order: 'asc',
        limit: 4,
        source: 'crm',
      };
      if (cursor) query.cursor = cursor;
      const body = await get(query);
      totals.add(body.total);
      items.push(...body.items.map((r: WorkflowRecord) => r.id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(items).to.deep.equal(ordered(crm, 'category', 'asc'));
    expect([...totals]).to.deep.equal([crm.length]);
  });

  it('offset skips into the same order, and its next_cursor continues after the page', async () => {
    const expected = ordered(seeded, 'source', 'desc');
    const body = await get({ sort_by: 'source', sort_order: 'desc', offset: 5, limit: 6 });
    expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(expected.slice(5, 11));
    const next = await get({ sort_by: 'source', sort_order: 'desc', limit: 6, cursor: body.next_cursor });
    expect(next.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(expected.slice(11, 17));
    expect((await get({ offset: 24 })).items).to.deep.equal([]);
  });

  it('caps limit at 200', async () => {
    const other = await createHarness();
    try {
      const inputs = Array.from({ length: 205 }, (_, i) => ({ category: 'c', source: 's', payload: { i } }));
      await other.db.records.insertRecords(inputs.map((input) => ({ input, process: false, requestId: null })));
      const body = (await other.http.get('/records?limit=5000').expect(200)).body;
      expect(body).to.include({ limit: 200, count: 200, total: 205 });
      expect(body.next_cursor).to.be.a('string');
      const rest = (await other.http.get('/records').query({ limit: 5000, cursor: body.next_cursor }).expect(200)).body;
      expect(rest).to.include({ count: 5, next_cursor: null });
    } finally {
      await other.close();
    }
    expect((await get({ limit: 1 })).count).to.equal(1);
  });

  for (const [what, query] of [
    ['limit 0', 'limit=0'],
    ['a negative limit', 'limit=-1'],
    ['a fractional limit', 'limit=1.5'],
    ['a limit that is not a number', 'limit=ten'],
    ['a negative offset', 'offset=-1'],
    ['an offset past 10,000', 'offset=10001'],
    ['an unknown sort field', 'sort_by=id'],
    ['an unknown sort order', 'sort_order=up'],
    ['an unknown status', 'status=done'],
    ['a malformed date', 'created_after=yesterday'],
    ['an impossible date', 'created_before=2026-02-31'],
    ['created_after after created_before', 'created_after=2026-02-02&created_before=2026-02-01'],
    ['a category over 128 characters', `category=${'c'.repeat(129)}`],
    ['a repeated parameter', 'status=pending&status=failed'],
    ['a repeated limit', 'limit=5&limit=6'],
    ['an unknown parameter', 'colour=red'],
    ['a cursor that is not one', 'cursor=abc'],
    ['a cursor together with an offset', 'cursor=abc&offset=2'],
  ]) {
    it(`answers 422 VALIDATION_ERROR for ${what}`, async () => {
      const res = await h.http.get(`/records?${query}`);
      expectContractError(res, 422, 'VALIDATION_ERROR');
      expect(res.body.error.details).to.be.an('array').that.is.not.empty;
    });
  }

  it('answers 422 for a cursor edited by a single character, cut short, or used with other filters or order', async () => {
    const { next_cursor: cursor } = await get({ limit: 3, sort_by: 'status' });
    expect(cursor).to.be.a('string');
    const flipped =
      cursor[3] === 'A' ? `${cursor.slice(0, 3)}B${cursor.slice(4)}` : `${cursor.slice(0, 3)}A${cursor.slice(4)}`;
    for (const [bad, query] of [
      [flipped, { sort_by: 'status' }],
      [cursor.slice(0, -2), { sort_by: 'status' }],
      [cursor, { sort_by: 'category' }],
      [cursor, { sort_by: 'status', sort_order: 'asc' }],
      [cursor, { sort_by: 'status', status: 'failed' }],
    ] as const) {
      const res = await h.http.get('/records').query({ ...query, cursor: bad });
      expectContractError(res, 422, 'VALIDATION_ERROR');
      expect(res.body.error.details[0].field).to.equal('query.cursor');
    }
    // the page size may change along the way
    expect((await get({ sort_by: 'status', cursor, limit: 7 })).count).to.equal(7);
  });

  it('a cursor walk stays exact while records are inserted between pages', async () => {
    for (const order of ['asc', 'desc'] as const) {
      const before = ordered(seeded, 'created_at', order);
      const inserted: string[] = [];
      let n = 0;
      const walked = await walk({ sort_order: order, limit: 4 }, async () => {
        // one record now (after everything), one in the middle of the seeded times
        for (const at of [Date.now(), T0 + (n++ % 20) * 7 * MINUTE + 1]) {
          const res = await atTime(at, () =>
            h.db.records.insertRecords([
              { input: { category: 'alpha', source: 'late', payload: {} }, process: false, requestId: null },
            ]),
          );
          if (!res.replayed) inserted.push(res.records[0]!.id);
        }
      });
      const ids = walked.map((r) => r.id);
      expect(new Set(ids).size, 'no record twice').to.equal(ids.length);
      // every record there from the start, once and in order; records inserted meanwhile only where they belong
      expect(ids.filter((id) => !inserted.includes(id))).to.deep.equal(before);
      const times = walked.map((r) => Date.parse(r.created_at));
      const sorted = [...times].sort((a, b) => (order === 'asc' ? a - b : b - a));
      expect(times).to.deep.equal(sorted);
      // back to the seeded records for the next order
      await h.db.knex('records').whereIn('id', inserted).delete();
      await rebuildReportCounts(h.db.knex);
    }
  });

  it('sorted by a field with many small values, pages and offsets stay in order', async () => {
    const other = await createHarness();
    try {
      const rows: Seeded[] = [];
      for (let i = 0; i < 60; i++) {
        const input = { category: `cat-${String(i % 30).padStart(2, '0')}`, source: i % 2 ? 'a' : 'b', payload: {} };
        const at = T0 + (i % 7) * MINUTE;
        const out = await atTime(at, () =>
          other.db.records.insertRecords([{ input, process: false, requestId: null }]),
        );
        if (out.replayed) throw new Error('unexpected replay');
        rows.push({ id: out.records[0]!.id, ...input, status: 'pending', created_at: at });
      }
      for (const order of ['asc', 'desc'] as const) {
        const expected = ordered(rows, 'category', order);
        const ids: string[] = [];
        let cursor: string | null = null;
        do {
          const query: Record<string, string | number> = { sort_by: 'category', sort_order: order, limit: 25 };
          if (cursor) query.cursor = cursor;
          const body = (await other.http.get('/records').query(query).expect(200)).body;
          ids.push(...body.items.map((r: WorkflowRecord) => r.id));
          cursor = body.next_cursor;
        } while (cursor);
        expect(ids).to.deep.equal(expected);
        for (const offset of [0, 3, 17, 40]) {
          const body = (
            await other.http
              .get('/records')
              .query({ sort_by: 'category', sort_order: order, limit: 15, offset })
              .expect(200)
          ).body;
          expect(body.items.map((r: WorkflowRecord) => r.id)).to.deep.equal(expected.slice(offset, offset + 15));
        }
      }
    } finally {
      await other.close();
    }
  });

  describe('with thousands of records', () => {
    let other: Harness;
    before(async () => {
      other = await createHarness();
      // 3,000 records: categories a and b with 1,200 each (past what planning counts from an index),
      // 600 more each in a category and a source of their own
      const inputs = Array.from({ length: 3000 }, (_, i) => ({
        category: i < 2400 ? (i % 2 ? 'a' : 'b') : `own-${String(i).padStart(4, '0')}`,
        source: i < 2400 ? (i % 3 ? 'x' : 'y') : `own-${String(i).padStart(4, '0')}`,
        payload: {},
      }));
      for (let i = 0; i < inputs.length; i += 1000) {
        const at = T0 + i * MINUTE;
        const out = await atTime(at, () =>
          other.db.records.insertRecords(
            inputs.slice(i, i + 1000).map((input) => ({ input, process: true, requestId: null })),
          ),
        );
        if (out.replayed) throw new Error('unexpected replay');
        await atTime(at + MINUTE, () =>
          other.db.transitions.applyTransitions(
            out.records
              .filter((_, j) => j % 4 !== 0)
              .map((r, j) => ({
                recordId: r.id,
                seq: 1,
                to: j % 5 === 0 ? 'failed' : 'processed',
                attempt: 1,
                requestId: null,
                jobId: null,
              })),
          ),
        );
      }
    });
    after(async () => {
      await other.close();
    });

    const plain = async (filters: Record<string, string>, sortBy: (typeof SORTS)[number], order: 'asc' | 'desc') => {
      const keys = [...(sortBy === 'created_at' ? [] : [sortBy]), 'created_at', 'id'];
      const rows = (await other.db
        .knex('records')
        .where(filters)
        .select('id')
        .orderBy(keys.map((column) => ({ column, order })))) as Array<{ id: string }>;
      return rows.map((r) => r.id);
    };
    const page = async (query: Record<string, string | number>) =>
      (await other.http.get('/records').query(query).expect(200)).body as {
        items: WorkflowRecord[];
        next_cursor: string | null;
      };

    it('with equalities past what an index probe counts, returns the same rows however the counters have drifted', async () => {
      // the counters say category a is huge and source x empty
      await other.db
        .knex('record_counts')
        .where({ category: 'a' })
        .update({ n: other.db.knex.raw('n + 1000000') });
      await other.db.knex('record_counts').where({ source: 'x' }).delete();
      try {
        const sets: Array<Record<string, string>> = [
          { category: 'a', source: 'x' },
          { status: 'pending', category: 'b' },
          { source: 'y' },
        ];
        for (const filters of sets) {
          for (const sortBy of SORTS) {
            for (const order of ['asc', 'desc'] as const) {
              const expected = await plain(filters, sortBy, order);
              const query = { ...filters, sort_by: sortBy, sort_order: order, limit: 200 };
              const label = `${JSON.stringify(filters)} by ${sortBy} ${order}`;
              const first = await page(query);
              expect(
                first.items.map((r) => r.id),
                label,
              ).to.deep.equal(expected.slice(0, 200));
              const second = await page({ ...query, cursor: first.next_cursor! });
              expect(
                second.items.map((r) => r.id),
                label,
              ).to.deep.equal(expected.slice(200, 400));
              const deep = await page({ ...query, offset: 300, limit: 50 });
              expect(
                deep.items.map((r) => r.id),
                label,
              ).to.deep.equal(expected.slice(300, 350));
            }
          }
        }
      } finally {
        await rebuildReportCounts(other.db.knex);
      }
    });

    it('sorted by a field with a value per record, a page reads a bounded number of rows, by cursor and by offset', async () => {
      const responses: number[] = [];
      const count = (response: unknown) => responses.push(Array.isArray(response) ? response.length : 1);
      other.db.reader.on('query-response', count);
      try {
        for (const sortBy of ['category', 'source', 'status'] as const) {
          for (const order of ['asc', 'desc'] as const) {
            const expected = await plain({}, sortBy, order);
            const query = { sort_by: sortBy, sort_order: order, limit: 50 };
            let cursor: string | null = null;
            // from the first page to deep among the values of one record each
            for (let n = 0; n < 50; n++) {
              responses.length = 0;
              const body = await page(cursor ? { ...query, cursor } : query);
              expect(body.items.map((r) => r.id)).to.deep.equal(expected.slice(n * 50, n * 50 + 50));
              expect(responses.length, `queries for page ${n + 1} by ${sortBy} ${order}`).to.be.at.most(24);
              expect(Math.max(...responses), `rows of one query, page ${n + 1}`).to.be.at.most(51);
              cursor = body.next_cursor;
            }
            responses.length = 0;
            const deep = await page({ ...query, offset: 2900 });
            expect(deep.items.map((r) => r.id)).to.deep.equal(expected.slice(2900, 2950));
            expect(Math.max(...responses)).to.be.at.most(51);
          }
        }
      } finally {
        other.db.reader.off('query-response', count);
      }
    });
  });
});
