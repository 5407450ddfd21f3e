import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import supertest from 'supertest';
import { contractErrorProblem, type HttpAnswer } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

/**
 * Property: whatever a client sends — any JSON or broken JSON, any content type, any
 * query string, any key — the API never answers 5xx, every 4xx is in the contract's
 * error shape, a refused write stores nothing, and /health still answers 200 afterwards.
 */

const KEY = 'fuzz-key-7c1d';
// GET /records and /reports/timeseries are fuzzed in reads-fuzz.test.ts
const RUNS = { postRecords: 1200, batch: 400, summary: 800 } as const;

// ---- strings a client might send: random, and the ones that break naive code

const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff\ud800',
  '\u001b[2J',
  '\r\n{"level":60,"msg":"forged"}',
  "'; drop table records; --",
  "' or '1'='1",
  '" or ""="',
  '%00',
  '%',
  '%E0%A4%A',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  '../../etc/passwd',
  '${7*7}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  'NaN',
  'null',
  'undefined',
  'true',
  '0',
  '-1',
  '1e309',
  '9007199254740993',
  'x'.repeat(128),
  'x'.repeat(129),
  '😀'.repeat(64),
  '😀'.repeat(65),
  'pending',
  'processed',
  'failed',
  '2026-01-01',
  '2026-02-31',
  '2026-01-01T00:00:00Z',
  '2026-01-01T25:00:00Z',
  '+275760-09-13T00:00:00Z',
  '0000-01-01',
);

const text = fc.oneof(
  { weight: 3, arbitrary: nasty },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
);

// ---- JSON values: ordinary, deep (around the 32-level limit and far past it) and wide (around 1,000 keys)

/** `{"a": … }` nested `depth` levels (the outer object counts), built without recursion. */
function nested(depth: number, leaf: unknown, viaArrays: boolean): unknown {
  let value: unknown = leaf;
  for (let i = 1; i < depth; i++) value = viaArrays ? [value] : { a: value };
  return viaArrays ? { a: value } : value;
}

const deepValue = fc
  .tuple(fc.integer({ min: 28, max: 36 }), fc.jsonValue({ maxDepth: 1 }), fc.boolean())
  .map(([depth, leaf, viaArrays]) => nested(depth, leaf, viaArrays));

/**
 * Thousands of levels deep, as text: the test's own JSON.stringify would overflow the
 * stack on such a value, so it is spliced into an otherwise valid record.
 */
const veryDeepBody = fc
  .tuple(fc.constantFrom('payload', 'source', 'extra', 'body'), fc.integer({ min: 1000, max: 50_000 }), fc.boolean())
  .map(([where, depth, viaArrays]) => {
    const deep = viaArrays
      ? `${'['.repeat(depth)}0${']'.repeat(depth)}`
      : `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`;
    if (where === 'body') return deep;
    const record: Record<string, string> = { source: '"s"', category: '"c"', payload: '{}', [where]: deep };
    return `{${Object.entries(record)
      .map(([k, v]) => `"${k}":${v}`)
      .join(',')}}`;
  });

const wideValue = fc.tuple(fc.integer({ min: 995, max: 1005 }), fc.integer({ min: 1, max: 4 })).map(([keys, parts]) => {
  const out: Record<string, Record<string, number>> = {};
  for (let p = 0; p < parts; p++) out[`p${p}`] = {};
  // the `parts` container keys count too
  for (let k = 0; k < keys - parts; k++) out[`p${k % parts}`]![`k${k}`] = k;
  return out;
});

const jsonObject = fc.dictionary(fc.oneof(text, fc.constantFrom('__proto__', 'constructor')), fc.jsonValue(), {
  maxKeys: 6,
});

const anyValue = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: text },
  { weight: 1, arbitrary: deepValue },
  { weight: 1, arbitrary: wideValue },
);

const recordLike = fc.record(
  {
    source: fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: anyValue }),
    category: fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: anyValue }),
    payload: fc.oneof(
      { weight: 3, arbitrary: jsonObject },
      { weight: 1, arbitrary: deepValue },
      { weight: 1, arbitrary: wideValue },
      { weight: 1, arbitrary: anyValue },
    ),
    extra: anyValue,
    ['__proto__']: jsonObject,
  },
  { requiredKeys: [] },
);

/** Valid records often enough that the write path (201, storage) is exercised too. */
const validRecord = fc.record({
  source: fc.string({ minLength: 1, maxLength: 128 }),
  category: fc.string({ minLength: 1, maxLength: 128 }),
  payload: fc.oneof({ weight: 4, arbitrary: jsonObject }, wideValue, deepValue),
});

// ---- bodies as the bytes sent: well-formed JSON, cut-off JSON, or anything at all

const jsonBody = fc.oneof(
  { weight: 4, arbitrary: recordLike.map((v) => JSON.stringify(v)) },
  { weight: 5, arbitrary: validRecord.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: anyValue.map((v) => JSON.stringify(v) ?? 'null') },
  {
    weight: 1,
    arbitrary: fc
      .tuple(validRecord, fc.nat())
      .map(([v, cut]) => JSON.stringify(v).slice(0, cut % (JSON.stringify(v).length + 1))),
  },
  { weight: 1, arbitrary: veryDeepBody },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
);

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/merge-patch+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'multipart/form-data',
      'application/json; charset=latin1',
      '*/*',
    ),
  },
);

// ---- query strings: known and unknown names, repeats, hostile values, broken escapes

/** encodeURIComponent refuses lone surrogates; send those as an invalid UTF-8 sequence instead. */
const encode = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return s.replace(/[^A-Za-z0-9]/g, (ch) => (ch.length === 1 ? '%ED%A0%80' : encodeURIComponent(ch)));
  }
};

function queryString(names: readonly string[]) {
  const pair = fc.tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: text }),
    fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: fc.constantFrom(...names) }),
  );
  const encoded = fc
    .array(pair, { maxLength: 5 })
    .map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&'));
  // raw characters that are legal in a request target, '%' included, so escapes come out broken
  const raw = fc.string({ unit: fc.constantFrom(...'ab01=&%[]._-~!$()*+,;:@/?'.split('')), maxLength: 30 });
  return fc.oneof({ weight: 4, arbitrary: encoded }, { weight: 1, arbitrary: raw });
}

/** Absent mostly; a few fixed keys so repeats replay or collide; any printable text, up to past the 255 limit. */
const idempotencyKey = fc.oneof(
  { weight: 6, arbitrary: fc.constant<string | null>(null) },
  { weight: 2, arbitrary: fc.constantFrom<string | null>('idem-1', 'idem-2', "' or 1=1 --", 'k'.repeat(255)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
);

const apiKey = fc.oneof(
  { weight: 9, arbitrary: fc.constant<string | null>(KEY) },
  { weight: 1, arbitrary: fc.constantFrom<string | null>(null, '', `${KEY}x`, KEY.slice(1)) },
);

// ----

describe('fuzz: hostile requests never make the API fail', function () {
  this.timeout(120_000);
  let h: Harness;
  let server: http.Server;
  let client: ReturnType<typeof supertest>;
  const ran: Record<string, number> = {};
  // answers by status, printed per endpoint so a run shows what the inputs reached
  let statuses = new Map<number, number>();

  before(async () => {
    h = await createHarness({ env: { API_KEYS: KEY } });
    server = http.createServer(h.app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = supertest(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await h.close();
  });

  async function rowCounts(): Promise<{ records: number; idempotencyKeys: number }> {
    const count = async (table: string) => {
      const [{ n }] = (await h.db.knex(table).count({ n: '*' })) as Array<{ n: number | string }>;
      return Number(n);
    };
    return { records: await count('records'), idempotencyKeys: await count('idempotency_responses') };
  }

  /** The part of the property every answer must meet. */
  function problemWith(res: HttpAnswer): string | null {
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) return `answered ${res.status}: ${JSON.stringify(res.body)}`;
    if (res.status >= 400) return contractErrorProblem(res);
    return null;
  }

  async function check<Ts extends [unknown, ...unknown[]]>(
    name: keyof typeof RUNS,
    property: fc.IAsyncPropertyWithHooks<Ts>,
  ) {
    statuses = new Map();
    const details = await fc.check(property, { numRuns: RUNS[name] });
    ran[name] = details.numRuns;
    const seen = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`);
    console.log(`      ${details.numRuns} cases (seed ${details.seed}); answers ${seen.join(', ')}`);
    if (details.failed) {
      // a counterexample can be a document thousands of levels deep: keep the report readable
      const report = fc.defaultReportMessage(details) ?? 'property failed';
      throw new Error(report.length > 4000 ? `${report.slice(0, 2000)} … ${report.slice(-2000)}` : report);
    }
  }

  it(`POST /records: ${RUNS.postRecords} random bodies, content types, query strings, keys and idempotency keys`, async () => {
    const property = fc.asyncProperty(
      jsonBody,
      contentType,
      fc.oneof(
        { weight: 3, arbitrary: fc.constant('') },
        { weight: 1, arbitrary: fc.constantFrom('process=true', 'process=false', 'process=1') },
        { weight: 2, arbitrary: queryString(['process']) },
      ),
      apiKey,
      idempotencyKey,
      async (body, type, query, key, idempotency) => {
        const before = await rowCounts();
        let req = client.post(`/records${query ? `?${query}` : ''}`).set('Content-Type', type);
        if (key !== null) req = req.set('X-API-Key', key);
        if (idempotency !== null) req = req.set('Idempotency-Key', idempotency);
        const res = await req.send(body);
        const problem = problemWith(res);
        if (problem) throw new Error(problem);
        const after = await rowCounts();
        if (res.status === 201) {
          const replayed = res.headers['idempotent-replayed'] === 'true';
          expect(after).to.deep.equal(
            replayed
              ? before
              : { records: before.records + 1, idempotencyKeys: before.idempotencyKeys + (idempotency ? 1 : 0) },
          );
          expect(res.headers.location).to.equal(`/records/${res.body.id}`);
          // what was stored is what was sent
          const sent = JSON.parse(body) as { payload: unknown };
          expect(JSON.stringify(res.body.payload)).to.equal(JSON.stringify(sent.payload));
        } else {
          expect(res.status, JSON.stringify(res.body)).to.be.within(400, 499);
          expect(after, 'a refused write stored something').to.deep.equal(before);
        }
      },
    );
    await check('postRecords', property);
  });

  it(`POST /records/batch: ${RUNS.batch} random batches of random records`, async () => {
    const batchBody = fc.oneof(
      { weight: 1, arbitrary: jsonBody },
      { weight: 4, arbitrary: fc.array(jsonBody, { maxLength: 4 }).map((items) => `{"records":[${items.join(',')}]}`) },
    );
    const property = fc.asyncProperty(
      batchBody,
      fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 1, arbitrary: queryString(['process']) }),
      apiKey,
      async (body, query, key) => {
        const before = await rowCounts();
        let req = client.post(`/records/batch${query ? `?${query}` : ''}`).set('Content-Type', 'application/json');
        if (key !== null) req = req.set('X-API-Key', key);
        const res = await req.send(body);
        const problem = problemWith(res);
        if (problem) throw new Error(problem);
        const after = await rowCounts();
        if (res.status === 201) {
          expect(res.body.count).to.equal(res.body.items.length);
          expect(after.records).to.equal(before.records + (res.body.count as number));
        } else {
          expect(res.status, JSON.stringify(res.body)).to.be.within(400, 499);
          expect(after, 'a refused batch stored something').to.deep.equal(before);
        }
      },
    );
    await check('batch', property);
  });

  it(`GET /reports/summary: ${RUNS.summary} random query strings`, async () => {
    const property = fc.asyncProperty(
      queryString(['status', 'category', 'source', 'date_from', 'date_to']),
      async (query) => {
        const res = await client.get(`/reports/summary${query ? `?${query}` : ''}`);
        const problem = problemWith(res);
        if (problem) throw new Error(problem);
        if (res.status === 200) expect(res.body.totals.all).to.be.a('number');
        else expect(res.status, JSON.stringify(res.body)).to.equal(422);
      },
    );
    await check('summary', property);
  });

  it('ran at least 2,000 cases in all, and /health answers 200 afterwards', async () => {
    const total = Object.values(ran).reduce((a, b) => a + b, 0);
    expect(ran).to.deep.equal(RUNS);
    expect(total).to.be.at.least(2000);
    const health = await client.get('/health').expect(200);
    expect(health.body).to.deep.include({ service: 'ok', database: { status: 'ok' } });
    expect(h.logs.filter((l) => l.msg === 'unhandled error')).to.deep.equal([]);
  });
});
