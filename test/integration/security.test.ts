import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import bunyan from 'bunyan';
import { expect } from 'chai';
import supertest from 'supertest';
import { createApp } from '../../api/app.js';
import { createRedisConnection, type ErrorCode } from '../../shared/index.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const KEY_1 = 'k1-9f8e7d6c5b4a';
const KEY_2 = 'k2-0a1b2c3d4e5f';
const valid = { source: 'crm', category: 'lead', payload: { priority: 5 } };
const UNKNOWN_ID = '9b2f3c3e-6c1a-4d7e-9f00-000000000000';

/** `[[[…1…]]]` nested `depth` arrays deep, as text: built without recursion, parsed by the server. */
const nestedArrays = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
/** `{"a":{"a":…{}…}}`: the outer object plus `depth - 1` nested ones. */
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
const withPayload = (payloadJson: string) => `{"source":"s","category":"c","payload":${payloadJson}}`;
const manyKeys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));

async function rowCounts(h: Harness): Promise<{ records: number; transitions: number; idempotencyKeys: number }> {
  const count = async (table: string) => {
    const [{ n }] = (await h.db.knex(table).count({ n: '*' })) as Array<{ n: number | string }>;
    return Number(n);
  };
  return {
    records: await count('records'),
    transitions: await count('record_transitions'),
    idempotencyKeys: await count('idempotency_responses'),
  };
}

interface BadRequest {
  what: string;
  method?: 'get' | 'post';
  path?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** sent as is; an object is sent as JSON */
  body?: string | Buffer | object;
  status: number;
  code: ErrorCode;
}

describe('security: hostile input', () => {
  let h: Harness;
  let existingId: string;
  before(async () => {
    h = await createHarness({ env: { API_KEYS: `${KEY_1},${KEY_2}` } });
    existingId = (await h.http.post('/records').set('X-API-Key', KEY_1).send(valid).expect(201)).body.id as string;
  });
  after(async () => {
    await h.close();
  });

  const cases: BadRequest[] = [
    // access
    { what: 'a write without a key', body: valid, headers: { 'X-API-Key': '' }, status: 401, code: 'UNAUTHORIZED' },
    // limits on the body
    {
      what: 'a body over BODY_LIMIT (1mb)',
      body: { ...valid, payload: { blob: 'x'.repeat(1024 * 1024) } },
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    },
    { what: 'a text/plain body', contentType: 'text/plain', body: '{}', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    {
      what: 'a form body',
      contentType: 'application/x-www-form-urlencoded',
      body: 'source=crm&category=lead',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      what: 'a multipart body',
      contentType: 'multipart/form-data; boundary=x',
      body: '--x\r\n\r\n--x--',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      what: 'an unsupported Content-Encoding',
      headers: { 'Content-Encoding': 'compress' },
      body: JSON.stringify(valid),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      what: 'a gzip body that does not inflate',
      headers: { 'Content-Encoding': 'gzip' },
      body: JSON.stringify(valid),
      status: 400,
      code: 'MALFORMED_JSON',
    },
    {
      what: 'a gzip body that inflates past BODY_LIMIT',
      headers: { 'Content-Encoding': 'gzip' },
      body: gzipSync(withPayload(`{"pad":"${' '.repeat(4 * 1024 * 1024)}"}`)),
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    },
    { what: 'truncated JSON', body: '{"source": "crm", ', status: 400, code: 'MALFORMED_JSON' },
    { what: 'JSON with a trailing comma', body: '{"source": "crm",}', status: 400, code: 'MALFORMED_JSON' },
    { what: 'single-quoted JSON', body: "{'source': 'crm'}", status: 400, code: 'MALFORMED_JSON' },
    { what: 'NaN in JSON', body: withPayload('{"n": NaN}'), status: 400, code: 'MALFORMED_JSON' },
    { what: 'a body of spaces', body: '   ', status: 400, code: 'MALFORMED_JSON' },
    // shape
    { what: 'no body at all', status: 422, code: 'VALIDATION_ERROR' },
    { what: 'a JSON null body', body: 'null', status: 422, code: 'VALIDATION_ERROR' },
    { what: 'a JSON string body', body: '"crm"', status: 422, code: 'VALIDATION_ERROR' },
    { what: 'a JSON array body', body: [valid], status: 422, code: 'VALIDATION_ERROR' },
    { what: 'an unknown field', body: { ...valid, admin: true }, status: 422, code: 'VALIDATION_ERROR' },
    {
      what: 'a top-level __proto__ field',
      body: `{"__proto__":{"admin":true},"source":"s","category":"c","payload":{}}`,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a top-level constructor field',
      body: `{"constructor":{"prototype":{"admin":true}},"source":"s","category":"c","payload":{}}`,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    // payload limits
    { what: 'a payload 33 levels deep', body: withPayload(nestedObjects(33)), status: 422, code: 'VALIDATION_ERROR' },
    {
      what: 'a payload 33 levels deep through arrays',
      body: withPayload(`{"a":${nestedArrays(32)}}`),
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a payload 5,000 levels deep',
      body: withPayload(`{"a":${nestedArrays(4999)}}`),
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a payload 100,000 levels deep',
      body: withPayload(nestedObjects(100_000)),
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a body 5,000 arrays deep',
      body: nestedArrays(5000),
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a source 5,000 arrays deep',
      body: `{"source":${nestedArrays(5000)},"category":"c","payload":{}}`,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'an unknown field 5,000 arrays deep',
      body: `{"x":${nestedArrays(5000)},"source":"s","category":"c","payload":{}}`,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a payload of 1,001 keys',
      body: { ...valid, payload: manyKeys(1001) },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a payload of 1,001 keys spread over nested objects',
      body: { ...valid, payload: { a: manyKeys(500), b: { c: manyKeys(498) } } },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a __proto__ key inside the payload',
      body: withPayload('{"a":[{"__proto__":{"polluted":true}}]}'),
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    // strings
    { what: 'an empty source', body: { ...valid, source: '' }, status: 422, code: 'VALIDATION_ERROR' },
    {
      what: 'a 129-character source',
      body: { ...valid, source: 's'.repeat(129) },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a 129-character category',
      body: { ...valid, category: 'c'.repeat(129) },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    { what: 'a NUL in the source', body: { ...valid, source: 'a\u0000b' }, status: 422, code: 'VALIDATION_ERROR' },
    {
      what: 'an escape sequence in the category',
      body: { ...valid, category: '\u001b[31mred' },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a newline in the source',
      body: { ...valid, source: 'crm\n{"level":60}' },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a lone surrogate in the category',
      body: '{"source":"s","category":"a\\ud800b","payload":{}}',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    { what: 'a numeric source', body: { ...valid, source: 42 }, status: 422, code: 'VALIDATION_ERROR' },
    // headers
    {
      what: 'an empty Idempotency-Key',
      headers: { 'Idempotency-Key': '' },
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a 256-character Idempotency-Key',
      headers: { 'Idempotency-Key': 'k'.repeat(256) },
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'an Idempotency-Key with an invalid body',
      headers: { 'Idempotency-Key': 'idem-1' },
      body: { ...valid, payload: manyKeys(1001) },
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    // query parameters
    {
      what: 'an unknown query parameter',
      path: '/records?admin=1',
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a non-boolean process flag',
      path: '/records?process=maybe',
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a repeated process flag',
      path: '/records?process=true&process=false',
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a __proto__ query parameter',
      path: '/records?__proto__=1',
      body: valid,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a repeated summary filter',
      method: 'get',
      path: '/reports/summary?status=pending&status=failed',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a summary filter with a NUL',
      method: 'get',
      path: '/reports/summary?category=a%00b',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a 129-character summary filter',
      method: 'get',
      path: `/reports/summary?source=${'s'.repeat(129)}`,
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a summary filter in bracket syntax',
      method: 'get',
      path: '/reports/summary?status[$ne]=pending',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'an impossible date',
      method: 'get',
      path: '/reports/summary?date_from=2026-13-01',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    {
      what: 'a constructor query parameter',
      method: 'get',
      path: '/reports/summary?constructor=x',
      status: 422,
      code: 'VALIDATION_ERROR',
    },
    // ids
    {
      what: 'SQL in a record id',
      method: 'get',
      path: `/records/${encodeURIComponent("' or 1=1; drop table records; --")}`,
      status: 404,
      code: 'RECORD_NOT_FOUND',
    },
    {
      what: 'SQL in the id of a process call',
      path: `/records/${encodeURIComponent("x' or status='pending")}/process`,
      status: 404,
      code: 'RECORD_NOT_FOUND',
    },
    {
      what: 'a malformed escape in an id',
      method: 'get',
      path: '/records/%E0%A4%A',
      status: 404,
      code: 'RECORD_NOT_FOUND',
    },
    { what: 'retry of an unknown record', path: `/records/${UNKNOWN_ID}/retry`, status: 404, code: 'RECORD_NOT_FOUND' },
  ];

  for (const c of cases) {
    it(`${c.what}: ${c.status} ${c.code}, nothing stored`, async () => {
      const before = await rowCounts(h);
      const method = c.method ?? 'post';
      let req = h.http[method](c.path ?? '/records').set('X-API-Key', KEY_1);
      for (const [name, value] of Object.entries(c.headers ?? {})) req = req.set(name, value);
      if (c.body !== undefined) {
        req = req.set('Content-Type', c.contentType ?? 'application/json');
        // a Buffer goes out as its bytes, not serialised as JSON
        if (Buffer.isBuffer(c.body)) req = req.serialize((bytes: Buffer) => bytes as unknown as string);
        req = req.send(c.body);
      }
      const res = await req;
      expectContractError(res, c.status, c.code);
      expect(await rowCounts(h)).to.deep.equal(before);
      const stored = await h.db.knex('records').select('id', 'status', 'queued_at');
      expect(stored.map((r: { id: string }) => r.id)).to.include(existingId);
    });
  }

  it('names the payload limit that was exceeded', async () => {
    const deep = await h.http
      .post('/records')
      .set('X-API-Key', KEY_1)
      .type('json')
      .send(withPayload(nestedObjects(33)));
    expect(deep.body.error.details).to.deep.include({
      field: 'body.payload',
      message: '"payload" must not be nested deeper than 32 levels',
      type: 'payload.depth',
    });
    const wide = await h.http
      .post('/records')
      .set('X-API-Key', KEY_1)
      .send({ ...valid, payload: manyKeys(1001) });
    expect(wide.body.error.details[0]).to.include({ field: 'body.payload', type: 'payload.keys' });
    const proto = await h.http
      .post('/records')
      .set('X-API-Key', KEY_1)
      .type('json')
      .send('{"__proto__":{},"source":"s","category":"c","payload":{}}');
    expect(proto.body.error.details[0]).to.include({ field: 'body.__proto__', type: 'object.unknown' });
  });

  it('accepts a payload exactly at the limits: 32 levels, 1,000 keys', async () => {
    const deep = await h.http
      .post('/records')
      .set('X-API-Key', KEY_1)
      .type('json')
      .send(withPayload(nestedObjects(32)))
      .expect(201);
    expect(JSON.stringify(deep.body.payload)).to.equal(nestedObjects(32));
    const wide = { ...valid, payload: { a: manyKeys(499), b: manyKeys(499) } };
    const res = await h.http.post('/records').set('X-API-Key', KEY_1).send(wide).expect(201);
    expect(res.body.payload).to.deep.equal(wide.payload);
  });

  it('stores constructor and prototype keys as data, never merging them into an object', async () => {
    const payload = '{"constructor":{"prototype":{"polluted":true}},"prototype":{"polluted":true},"toString":"x"}';
    const res = await h.http.post('/records').set('X-API-Key', KEY_1).type('json').send(withPayload(payload));
    expect(res.status).to.equal(201);
    const read = await h.http.get(`/records/${res.body.id}`).expect(200);
    expect(JSON.stringify(read.body.payload)).to.equal(payload);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.getPrototypeOf(read.body.payload)).to.equal(Object.prototype);
  });

  it('stores SQL and markup in values as plain text', async () => {
    const hostile = {
      source: "'); drop table records; --",
      category: '" or ""="',
      payload: { q: "1' union select * from records --", html: '<script>alert(1)</script>' },
    };
    const res = await h.http.post('/records').set('X-API-Key', KEY_1).send(hostile).expect(201);
    const read = await h.http.get(`/records/${res.body.id}`).expect(200);
    expect(read.body).to.include({ source: hostile.source, category: hostile.category });
    expect(read.body.payload).to.deep.equal(hostile.payload);
    const summary = await h.http.get('/reports/summary').query({ category: hostile.category }).expect(200);
    expect(summary.body.totals.all).to.equal(1);
  });

  it('reads JSON sent under any +json media type', async () => {
    const res = await h.http
      .post('/records')
      .set('X-API-Key', KEY_1)
      .set('Content-Type', 'application/vnd.workflow+json; charset=utf-8')
      .send(JSON.stringify(valid))
      .expect(201);
    expect(res.body.payload).to.deep.equal(valid.payload);
  });

  it('keeps text that is not a control character: accents, CJK, emoji', async () => {
    const body = {
      source: 'Zoë — 東京 ✓',
      category: '🚀 launch',
      payload: { note: 'tab\tand\nnewline are fine here' },
    };
    const res = await h.http.post('/records').set('X-API-Key', KEY_1).send(body).expect(201);
    expect(res.body).to.include({ source: body.source, category: body.category });
    expect(res.body.payload).to.deep.equal(body.payload);
  });
});

describe('security: API keys', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness({ env: { API_KEYS: `${KEY_1}, ${KEY_2}` } });
  });
  afterEach(async () => {
    await h.close();
  });

  const refused: Array<[string, Record<string, string>, string]> = [
    ['no key', {}, 'Bearer realm="workflow-service"'],
    ['a wrong key', { 'X-API-Key': 'nope' }, 'Bearer realm="workflow-service", error="invalid_token"'],
    ['a key one character longer', { 'X-API-Key': `${KEY_1}x` }, 'error="invalid_token"'],
    ['a key one character shorter', { 'X-API-Key': KEY_1.slice(0, -1) }, 'error="invalid_token"'],
    ['a key in the wrong case', { 'X-API-Key': KEY_1.toUpperCase() }, 'error="invalid_token"'],
    ['both keys joined', { 'X-API-Key': `${KEY_1},${KEY_2}` }, 'error="invalid_token"'],
    ['a wrong Bearer key', { Authorization: 'Bearer nope' }, 'error="invalid_token"'],
    ['a Bearer key one character longer', { Authorization: `Bearer ${KEY_2}x` }, 'error="invalid_token"'],
    ['a key in Basic form', { Authorization: `Basic ${Buffer.from(`${KEY_1}:`).toString('base64')}` }, 'realm'],
    ['Bearer without a key', { Authorization: 'Bearer ' }, 'realm'],
  ];
  for (const [what, headers, challenge] of refused) {
    it(`refuses a write with ${what}: 401 UNAUTHORIZED with WWW-Authenticate, nothing stored`, async () => {
      const res = await h.http.post('/records').set(headers).send(valid);
      expectContractError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).to.contain(challenge);
      expect(await rowCounts(h)).to.deep.equal({ records: 0, transitions: 0, idempotencyKeys: 0 });
    });
  }

  it('refuses every write route without a key, before reading the body', async () => {
    expectContractError(await h.http.post(`/records/${UNKNOWN_ID}/process`), 401, 'UNAUTHORIZED');
    expectContractError(await h.http.post(`/records/${UNKNOWN_ID}/retry`), 401, 'UNAUTHORIZED');
    // a malformed body is not even parsed for an anonymous client
    const res = await h.http.post('/records').type('json').send('{oops');
    expectContractError(res, 401, 'UNAUTHORIZED');
    expectContractError(await h.http.delete('/records'), 401, 'UNAUTHORIZED');
  });

  for (const [name, key] of [
    ['the first key', KEY_1],
    ['the second key', KEY_2],
  ]) {
    it(`accepts ${name} as X-API-Key and as a Bearer token`, async () => {
      await h.http.post('/records').set('X-API-Key', key!).send(valid).expect(201);
      await h.http.post('/records').set('Authorization', `Bearer ${key}`).send(valid).expect(201);
      await h.http.post('/records').set('Authorization', `bearer ${key}`).send(valid).expect(201);
      expect((await rowCounts(h)).records).to.equal(3);
    });
  }

  it('keeps reads public', async () => {
    const id = (await h.http.post('/records').set('X-API-Key', KEY_1).send(valid).expect(201)).body.id as string;
    await h.http.get('/health').expect(200);
    await h.http.get('/health/live').expect(200);
    await h.http.get('/version').expect(200);
    await h.http.get(`/records/${id}`).expect(200);
    await h.http.get(`/records/${id}/history`).expect(200);
    await h.http.get('/reports/summary').expect(200);
    expectContractError(await h.http.get('/nowhere'), 404, 'NOT_FOUND');
  });

  it('never writes a key to the log or echoes it', async () => {
    await h.http.post('/records').set('X-API-Key', KEY_1).send(valid).expect(201);
    const refusedRes = await h.http.post('/records').set('X-API-Key', `${KEY_2}x`).send(valid);
    expect(JSON.stringify(refusedRes.body)).not.to.contain(KEY_2);
    const logged = JSON.stringify(h.logs);
    expect(logged).not.to.contain(KEY_1);
    expect(logged).not.to.contain(KEY_2);
  });

  for (const path of ['/admin/queues', '/admin', '/ADMIN/queues', '/%61dmin/queues', '//admin//queues', '/admin/x/y']) {
    it(`requires a key for any method under /admin: GET ${path}`, async () => {
      expectContractError(await h.http.get(path), 401, 'UNAUTHORIZED');
      // with a key the request gets through: to the queue UI, or to the router's 404 for the look-alikes
      const res = await h.http.get(path).set('X-API-Key', KEY_2);
      expect(res.status).to.equal(path === '/admin/queues' ? 200 : 404);
    });
  }

  it('does not warn about open writes when keys are set; warns when they are not', async () => {
    const warning = (logs: Harness['logs']) => logs.some((l) => /API_KEYS is not set/.test(l.msg));
    expect(warning(h.logs)).to.equal(false);
    const open = await createHarness();
    try {
      expect(warning(open.logs)).to.equal(true);
      await open.http.post('/records').send(valid).expect(201);
      await open.http.get('/admin/queues').expect(200);
    } finally {
      await open.close();
    }
  });
});

describe('security: rate limiting', () => {
  let h: Harness;
  let privateRedis: RedisServer | undefined;
  afterEach(async () => {
    await h.close();
    await privateRedis?.stop();
    privateRedis = undefined;
  });

  const post = (http: Harness['http'], key: string) => http.post('/records').set('X-API-Key', key).send(valid);

  it('answers 429 RATE_LIMITED with Retry-After past RATE_LIMIT_PER_MINUTE writes per key', async () => {
    h = await createHarness({ env: { API_KEYS: `${KEY_1},${KEY_2}`, RATE_LIMIT_PER_MINUTE: '5' } });
    for (let i = 0; i < 5; i++) await post(h.http, KEY_1).expect(201);
    const res = await post(h.http, KEY_1);
    expectContractError(res, 429, 'RATE_LIMITED');
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).to.be.within(1, 60);
    expect((await rowCounts(h)).records).to.equal(5);
    // other writes count too; another key has its own budget; reads are not limited
    expectContractError(
      await h.http.post(`/records/${UNKNOWN_ID}/process`).set('X-API-Key', KEY_1),
      429,
      'RATE_LIMITED',
    );
    await post(h.http, KEY_2).expect(201);
    for (let i = 0; i < 8; i++) await h.http.get('/reports/summary').expect(200);
    // a wrong key is refused as such, not counted against anyone
    expectContractError(await post(h.http, 'nope'), 401, 'UNAUTHORIZED');
    // counters are named by a fingerprint, never by the key
    const counters = await h.deps.redis.keys(`${h.config.queuePrefix}:rate-limit:*`);
    expect(counters).to.have.length(2);
    expect(counters.join()).not.to.contain(KEY_1);
  });

  it('lets the client write again when its window ends', async () => {
    h = await createHarness({ env: { API_KEYS: KEY_1, RATE_LIMIT_PER_MINUTE: '1' } });
    await post(h.http, KEY_1).expect(201);
    expectContractError(await post(h.http, KEY_1), 429, 'RATE_LIMITED');
    const [counter] = await h.deps.redis.keys(`${h.config.queuePrefix}:rate-limit:*`);
    await h.deps.redis.pexpire(counter!, 1);
    await new Promise((r) => setTimeout(r, 20));
    await post(h.http, KEY_1).expect(201);
  });

  it('shares the count between API processes through Redis', async () => {
    h = await createHarness({ env: { API_KEYS: KEY_1, RATE_LIMIT_PER_MINUTE: '5' } });
    const otherRedis = createRedisConnection(h.config.redisUrl, 'producer', h.logger);
    try {
      const other = supertest(createApp({ ...h.deps, redis: otherRedis }).callback());
      for (const http of [h.http, other, h.http, other, other]) await post(http, KEY_1).expect(201);
      expectContractError(await post(h.http, KEY_1), 429, 'RATE_LIMITED');
      expectContractError(await post(other, KEY_1), 429, 'RATE_LIMITED');
    } finally {
      await otherRedis.quit();
    }
  });

  it('counts per client IP when no keys are set', async () => {
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '2' } });
    await h.http.post('/records').send(valid).expect(201);
    await h.http.post('/records').send(valid).expect(201);
    expectContractError(await h.http.post('/records').send(valid), 429, 'RATE_LIMITED');
    const counters = await h.deps.redis.keys(`${h.config.queuePrefix}:rate-limit:ip:*`);
    expect(counters).to.have.length(1);
  });

  it('is off by default', async () => {
    h = await createHarness({ env: { API_KEYS: KEY_1 } });
    for (let i = 0; i < 70; i++) await post(h.http, KEY_1).expect(201);
  });

  it('fails open while Redis is down: writes go on, one warning is logged', async () => {
    const redis = (privateRedis = await startRedisServer());
    h = await createHarness({ env: { API_KEYS: KEY_1, RATE_LIMIT_PER_MINUTE: '1', REDIS_URL: redis.url } });
    await post(h.http, KEY_1).expect(201);
    expectContractError(await post(h.http, KEY_1), 429, 'RATE_LIMITED');
    await redis.stop({ hard: true });
    try {
      for (let i = 0; i < 3; i++) await post(h.http, KEY_1).expect(201);
      expect((await rowCounts(h)).records).to.equal(4);
      expect(h.logs.filter((l) => l.msg === 'rate limit unavailable: allowing writes')).to.have.length(1);
    } finally {
      await redis.start();
    }
    // back: a fresh Redis starts a fresh count, and limits again
    for (let i = 0; i < 100 && h.deps.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    await post(h.http, KEY_1).expect(201);
    expectContractError(await post(h.http, KEY_1), 429, 'RATE_LIMITED');
    expect(h.logs.some((l) => l.msg === 'rate limiting restored')).to.equal(true);
  });
});

describe('security: headers, leaks and logs', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness({ env: { API_KEYS: KEY_1 } });
  });
  afterEach(async () => {
    await h.close();
  });

  function expectApiHeaders(res: { headers: Record<string, string> }) {
    expect(res.headers['x-powered-by']).to.equal(undefined);
    expect(res.headers['content-security-policy']).to.equal(
      "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'",
    );
    expect(res.headers['x-content-type-options']).to.equal('nosniff');
    expect(res.headers['x-frame-options']).to.equal('DENY');
    expect(res.headers['referrer-policy']).to.equal('no-referrer');
    expect(res.headers['strict-transport-security']).to.match(/^max-age=\d+/);
    expect(res.headers['cross-origin-resource-policy']).to.equal('same-origin');
  }

  it('sends the security headers on every answer, errors included', async () => {
    expectApiHeaders(await h.http.get('/health').expect(200));
    expectApiHeaders(await h.http.get('/nowhere').expect(404));
    expectApiHeaders(await h.http.post('/records').send(valid).expect(401));
    expectApiHeaders(await h.http.post('/records').set('X-API-Key', KEY_1).send({}).expect(422));
    expectApiHeaders(await h.http.post('/records').set('X-API-Key', KEY_1).send(valid).expect(201));
  });

  it('gives the HTML pages (/docs, /admin/queues) a policy that lets Swagger UI run', async () => {
    for (const path of ['/docs', '/docs/', '/docs/swagger-ui.css', '/admin/queues']) {
      const res = await h.http.get(path).set('X-API-Key', KEY_1);
      const csp = res.headers['content-security-policy']!;
      expect(csp, path).to.contain("default-src 'self'");
      expect(csp).to.contain("script-src 'self' 'unsafe-inline'");
      expect(csp).to.contain("style-src 'self' 'unsafe-inline'");
      expect(csp).to.contain("img-src 'self' data:");
      expect(csp).to.contain("connect-src 'self'");
      expect(csp).to.contain("object-src 'none'");
      expect(csp).not.to.contain('upgrade-insecure-requests');
      expect(res.headers['x-frame-options']).to.equal('SAMEORIGIN');
      expect(res.headers['x-content-type-options']).to.equal('nosniff');
    }
    // only those paths: a look-alike keeps the API policy
    expectApiHeaders(await h.http.get('/docsx'));
  });

  it('answers a failed write 500 with nothing of the SQL, the stack or a path', async () => {
    await h.db.knex.schema.dropTable('record_transitions');
    await h.db.knex.schema.dropTable('records');
    const res = await h.http.post('/records').set('X-API-Key', KEY_1).set('X-Request-ID', 'boom-2').send(valid);
    expect(res.status).to.equal(500);
    expect(res.body).to.deep.equal({
      error: { code: 'INTERNAL_ERROR', message: 'Internal server error' },
      request_id: 'boom-2',
    });
    expect(res.text).not.to.match(/insert|records|\.ts|node_modules|\bat\b/i);
    expectApiHeaders(res);
  });

  it('keeps every log record on one JSON line whatever the client puts in the path or headers', async () => {
    // the service's own serialisation (bunyan's JSON.stringify per record), not the harness's raw capture
    const written: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    });
    const logger = bunyan.createLogger({ name: 'api', streams: [{ level: 'trace', stream: sink }] });
    const http = supertest(createApp({ ...h.deps, logger }).callback());
    const forged = '{"level":60,"msg":"forged","request_id":"x"}';
    const paths = [
      `/records/x%0A${encodeURIComponent(forged)}`,
      `/records/x%0D%0A${encodeURIComponent(forged)}`,
      `/nowhere%0a%0d%E2%80%A8`,
      `/reports/summary?category=a%0A${encodeURIComponent(forged)}`,
    ];
    for (const path of paths) await http.get(path).set('X-Request-ID', `a"}${forged}`);
    await http.post('/records').set('X-API-Key', `x\t${forged}`).set('User-Agent', `ua${forged}`).send(valid);

    const text = written.join('');
    const lines = text.split('\n').filter((l) => l !== '');
    expect(written).to.have.length(lines.length);
    const records = lines.map((l) => JSON.parse(l) as { msg: string; path?: string; request_id?: string });
    expect(records.filter((r) => r.msg === 'forged')).to.have.length(0);
    const requestLines = records.filter((r) => r.msg === 'request');
    expect(requestLines.map((r) => r.path)).to.deep.equal([...paths.map((p) => p.split('?')[0]), '/records']);
    // an unsafe client request id is replaced, never logged
    for (const r of requestLines) expect(r.request_id).to.match(/^[0-9a-f-]{36}$/);
  });
});
