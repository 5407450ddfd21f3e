import { expect } from 'chai';
import { createHarness, type Harness } from '../helpers/harness.js';

const valid = { source: 'crm', category: 'lead', payload: { priority: 5 } };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// record ids are UUID v7: time-ordered
const RECORD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function expectError(
  res: { status: number; body: Record<string, unknown>; headers: Record<string, string> },
  status: number,
  code: string,
) {
  expect(res.status, JSON.stringify(res.body)).to.equal(status);
  const body = res.body as { error: { code: string; message: string }; request_id: string };
  expect(body.error.code).to.equal(code);
  expect(body.error.message).to.be.a('string').that.is.not.empty;
  expect(body.request_id).to.equal(res.headers['x-request-id']);
}

describe('records API', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  async function countRows() {
    const [{ n }] = (await h.db.knex('records').count({ n: '*' })) as Array<{ n: number | string }>;
    return Number(n);
  }

  describe('POST /records', () => {
    it('stores a pending record and answers 201 with its Location', async () => {
      const res = await h.http.post('/records').send(valid).expect(201);
      expect(res.body.id).to.match(RECORD_ID);
      expect(res.headers.location).to.equal(`/records/${res.body.id}`);
      expect(res.body).to.include({
        source: 'crm',
        category: 'lead',
        status: 'pending',
        result: null,
        error: null,
        attempts: 0,
      });
      expect(res.body.payload).to.deep.equal({ priority: 5 });
      expect(res.body.processed_at).to.equal(null);
      expect(new Date(res.body.created_at).toISOString()).to.equal(res.body.created_at);
      const stored = await h.http.get(res.headers.location).expect(200);
      expect(stored.body).to.deep.equal(res.body);
    });

    const invalid: Array<[string, unknown, string]> = [
      ['missing source', { category: 'c', payload: {} }, 'source'],
      ['missing category', { source: 's', payload: {} }, 'category'],
      ['missing payload', { source: 's', category: 'c' }, 'payload'],
      ['an unknown field', { ...valid, colour: 'red' }, 'colour'],
      ['a non-object payload', { ...valid, payload: [1, 2] }, 'payload'],
      ['a string payload', { ...valid, payload: 'x' }, 'payload'],
      ['an empty source', { ...valid, source: '' }, 'source'],
      ['a 129-character category', { ...valid, category: 'x'.repeat(129) }, 'category'],
      ['a numeric source', { ...valid, source: 7 }, 'source'],
      ['a JSON array body', [valid], 'body'],
    ];
    for (const [what, body, field] of invalid) {
      it(`answers 422 VALIDATION_ERROR naming the field for ${what}, storing nothing`, async () => {
        const res = await h.http.post('/records').send(body as object);
        expectError(res, 422, 'VALIDATION_ERROR');
        const fields = (res.body.error.details as Array<{ field: string }>).map((d) => d.field);
        expect(
          fields.some((f) => f.endsWith(field)),
          JSON.stringify(res.body.error.details),
        ).to.equal(true);
        expect(await countRows()).to.equal(0);
      });
    }

    it('answers 400 MALFORMED_JSON for a body that does not parse', async () => {
      const res = await h.http.post('/records').set('Content-Type', 'application/json').send('{"source": ');
      expectError(res, 400, 'MALFORMED_JSON');
    });

    it('answers 415 UNSUPPORTED_MEDIA_TYPE for a non-JSON body', async () => {
      const res = await h.http.post('/records').set('Content-Type', 'text/plain').send('source=crm');
      expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('answers 413 PAYLOAD_TOO_LARGE above BODY_LIMIT', async () => {
      await h.close();
      h = await createHarness({ env: { BODY_LIMIT: '1kb' } });
      const res = await h.http.post('/records').send({ ...valid, payload: { blob: 'x'.repeat(2000) } });
      expectError(res, 413, 'PAYLOAD_TOO_LARGE');
      expect(await countRows()).to.equal(0);
    });

    it('answers 422 for an unknown query parameter or a bad process flag', async () => {
      expectError(await h.http.post('/records?proces=true').send(valid), 422, 'VALIDATION_ERROR');
      expectError(await h.http.post('/records?process=maybe').send(valid), 422, 'VALIDATION_ERROR');
      expect(await countRows()).to.equal(0);
    });
  });

  describe('GET /records/:id', () => {
    it('answers 404 RECORD_NOT_FOUND for an unknown id and for a malformed one', async () => {
      expectError(await h.http.get('/records/9b2f3c3e-6c1a-4d7e-9f00-000000000000'), 404, 'RECORD_NOT_FOUND');
      expectError(await h.http.get('/records/not-a-uuid'), 404, 'RECORD_NOT_FOUND');
      expectError(await h.http.get(`/records/${"'; drop table records; --"}`), 404, 'RECORD_NOT_FOUND');
    });
  });

  describe('errors and request ids', () => {
    it('answers unknown routes with 404 NOT_FOUND in the contract shape', async () => {
      expectError(await h.http.get('/nope'), 404, 'NOT_FOUND');
      expectError(await h.http.post('/records/x/y/z').send({}), 404, 'NOT_FOUND');
    });

    it('answers a known route with the wrong method with 405 METHOD_NOT_ALLOWED and Allow', async () => {
      const res = await h.http.delete('/records');
      expectError(res, 405, 'METHOD_NOT_ALLOWED');
      expect(res.headers.allow).to.contain('POST');
    });

    it('echoes a safe X-Request-ID in the header, the error body and the request log line', async () => {
      const res = await h.http.get('/records/nope').set('X-Request-ID', 'client-42.a:b_c');
      expect(res.headers['x-request-id']).to.equal('client-42.a:b_c');
      expect(res.body.request_id).to.equal('client-42.a:b_c');
      const line = h.logs.find((l) => l.msg === 'request' && l.request_id === 'client-42.a:b_c');
      expect(line).to.include({ method: 'GET', path: '/records/nope', status_code: 404 });
      expect(line?.duration_ms).to.be.a('number');
    });

    it('makes a UUID v4 when the request id is absent or unsafe', async () => {
      const absent = await h.http.get('/health/live');
      expect(absent.headers['x-request-id']).to.match(UUID);
      for (const unsafe of ['has space', 'x'.repeat(129), 'new\\nline', 'semi;colon']) {
        const res = await h.http.get('/health/live').set('X-Request-ID', unsafe);
        expect(res.headers['x-request-id']).to.match(UUID);
      }
      const longest = 'y'.repeat(128);
      expect((await h.http.get('/health/live').set('X-Request-ID', longest)).headers['x-request-id']).to.equal(longest);
    });
  });
});

describe('unexpected failures', () => {
  it('answer 500 INTERNAL_ERROR with no stack, SQL or path in the body, and log the stack', async () => {
    const h = await createHarness();
    try {
      await h.db.knex.schema.dropTable('record_transitions');
      await h.db.knex.schema.dropTable('records');
      const res = await h.http.get('/records/9b2f3c3e-6c1a-4d7e-9f00-000000000000').set('X-Request-ID', 'boom-1');
      expect(res.status).to.equal(500);
      expect(res.body).to.deep.equal({
        error: { code: 'INTERNAL_ERROR', message: 'Internal server error' },
        request_id: 'boom-1',
      });
      const logged = h.logs.find((l) => l.msg === 'unhandled error');
      expect(logged).to.include({ request_id: 'boom-1' });
      expect((logged?.err as { stack: string }).stack).to.contain('records');
    } finally {
      await h.close();
    }
  });
});
