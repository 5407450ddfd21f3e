import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import supertest from 'supertest';
import { createApp, createRouteDeps, createRouter } from '../../api/app.js';
import { buildDashboard } from '../../bin/build-dashboard.js';
import { OPERATIONS } from '../../api/openapi/index.js';
import { createDatabase } from '../../shared/index.js';
import { createTestDatabase } from '../helpers/database.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { expectContractError } from '../helpers/contract.js';
import { DocumentedResponses } from '../helpers/openapi.js';
import { openSse } from '../helpers/sse-client.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

const KEY = 'openapi-test-key';
const valid = { source: 'crm', category: 'lead', payload: { priority: 5 } };
const UNKNOWN_ID = '9b2f3c3e-6c1a-4d7e-9f00-000000000000';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
interface Call {
  method?: Method;
  path: string;
  key?: boolean;
  headers?: Record<string, string>;
  /** an object is sent as JSON; a string as is, with `type` */
  body?: object | string;
  type?: string;
}

/**
 * The OpenAPI document against the API's real behaviour: every route is documented,
 * every documented answer is produced here and matches its schema, headers and
 * content type, and so does every answer this file sees.
 */
describe('OpenAPI document', function () {
  this.timeout(60_000);
  let docs: DocumentedResponses;
  /** API_KEYS set, a 1 kB body limit, a worker running */
  let h: Harness;

  async function call(target: Harness, c: Call) {
    const method = c.method ?? 'get';
    let req = target.http[method](c.path);
    if (c.key) req = req.set('X-API-Key', KEY);
    for (const [name, value] of Object.entries(c.headers ?? {})) req = req.set(name, value);
    if (c.type) req = req.set('Content-Type', c.type);
    const res = await (c.body === undefined ? req : req.send(c.body));
    const problem = docs.problem(method.toUpperCase(), c.path, res);
    expect(problem, `${method.toUpperCase()} ${c.path} → ${res.status} ${res.text?.slice(0, 300)}`).to.equal(null);
    return res;
  }

  before(async () => {
    h = await createHarness({ env: { API_KEYS: KEY, BODY_LIMIT: '1kb' }, worker: true });
    const res = await h.http.get('/openapi.json').expect(200);
    docs = new DocumentedResponses(res.body);
  });
  after(async () => {
    await h?.close();
  });

  it('is OpenAPI 3.0 with the package version, and serves the same document every time', async () => {
    expect(docs.document.openapi).to.equal('3.0.3');
    expect((docs.document.info as { version: string }).version).to.equal('0.0.0-test');
    expect((await h.http.get('/openapi.json')).body).to.deep.equal(docs.document);
  });

  it('documents exactly the routes the router has', () => {
    const router = createRouter(createRouteDeps(h.deps));
    const routes = router.stack
      .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${String(layer.path)}`))
      // Swagger UI's own files, part of GET /docs, and the dashboard's, part of GET /dashboard
      .filter((r) => r !== 'GET /docs/:asset' && r !== 'GET /dashboard/:asset')
      .map((r) => r.replace(/:(\w+)/g, '{$1}'));
    const documented = OPERATIONS.map((op) => `${op.method.toUpperCase()} ${op.path}`);
    // the queue UI is mounted beside the router, not in it
    expect([...routes, 'GET /admin/queues'].sort()).to.deep.equal([...documented].sort());
  });

  it('takes its request schemas from the Joi schemas the routes validate with', () => {
    const doc = docs.document as { paths: Record<string, Record<string, { parameters?: Array<{ name: string }> }>> };
    expect(doc.paths['/reports/summary']!.get!.parameters!.map((p) => p.name)).to.include.members([
      'status',
      'category',
      'source',
      'date_from',
      'date_to',
    ]);
    const input = (docs.document.components as { schemas: Record<string, { required: string[] }> }).schemas
      .RecordInput!;
    expect(input.required).to.deep.equal(['source', 'category', 'payload']);
    expect(input).to.have.property('additionalProperties', false);
  });

  it('GET /docs is Swagger UI on this document, every asset served by the API itself', async () => {
    const page = await h.http.get('/docs').expect(200);
    expect(page.headers['content-type']).to.match(/^text\/html/);
    // the page's own CSP: assets from this origin only
    expect(page.headers['content-security-policy']).to.match(/script-src 'self'/);
    expect(page.text).not.to.match(/(src|href)="(https?:)?\/\//);
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).to.include.members(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/init.js']);
    for (const asset of assets) {
      const res = await h.http.get(asset).expect(200);
      expect(res.headers.etag).to.be.a('string');
      await h.http.get(asset).set('If-None-Match', res.headers.etag!).expect(304);
    }
    const init = await h.http.get('/docs/init.js').expect('Content-Type', /javascript/);
    expect(init.text).to.include("url: '/openapi.json'");
    expectContractError(await h.http.get('/docs/../package.json'), 404, 'NOT_FOUND');
    expectContractError(await h.http.get('/docs/index.html'), 404, 'NOT_FOUND');
  });

  it('the check refuses answers that drift from the document', async () => {
    const res = await h.http.post('/records').set('X-API-Key', KEY).send(valid).expect(201);
    const answer = { status: 201, headers: res.headers as Record<string, string>, body: res.body as object };
    expect(docs.problem('POST', '/records', answer)).to.equal(null);
    const drifts: Array<[string, typeof answer]> = [
      ['a missing field', { ...answer, body: { ...answer.body, status: undefined } }],
      ['an undocumented field', { ...answer, body: { ...answer.body, colour: 'red' } }],
      ['a field of another type', { ...answer, body: { ...answer.body, attempts: '0' } }],
      ['a missing Location', { ...answer, headers: { ...answer.headers, location: undefined! } }],
      ['an undocumented status', { ...answer, status: 204 }],
      ['another content type', { ...answer, headers: { ...answer.headers, 'content-type': 'text/plain' } }],
    ];
    for (const [what, drifted] of drifts) {
      expect(docs.problem('POST', '/records', JSON.parse(JSON.stringify(drifted))), what).to.be.a('string');
    }
    const notFound = await h.http.get(`/records/${UNKNOWN_ID}`).expect(404);
    const wrongCode = { ...notFound.body, error: { ...notFound.body.error, code: 'NOT_FAILED' } };
    expect(docs.problem('GET', `/records/${UNKNOWN_ID}`, { ...notFound, body: wrongCode })).to.match(/code/);
  });

  describe('every documented answer, produced and checked', () => {
    let pendingId: string;
    let failedId: string;

    before(async () => {
      pendingId = (await call(h, { method: 'post', path: '/records', key: true, body: valid })).body.id;
      const failing = await call(h, {
        method: 'post',
        path: '/records?process=true',
        key: true,
        body: { ...valid, payload: { priority: 'n/a' } },
      });
      failedId = (await h.waitForTerminal(failing.body.id)).id;
    });

    it('records: created, replayed, read, history, processed and retried', async () => {
      await call(h, { method: 'post', path: '/records', key: true, body: valid });
      const idem = { 'Idempotency-Key': `k-${randomUUID()}` };
      await call(h, { method: 'post', path: '/records', key: true, headers: idem, body: valid });
      const replay = await call(h, { method: 'post', path: '/records', key: true, headers: idem, body: valid });
      expect(replay.headers['idempotent-replayed']).to.equal('true');
      const batch = await call(h, {
        method: 'post',
        path: '/records/batch?process=true',
        key: true,
        body: { records: [valid, valid] },
      });
      expect(batch.body.count).to.equal(2);
      const batchKey = { 'Idempotency-Key': `k-${randomUUID()}` };
      const batchBody = { records: [valid] };
      await call(h, { method: 'post', path: '/records/batch', key: true, headers: batchKey, body: batchBody });
      const again = await call(h, {
        method: 'post',
        path: '/records/batch',
        key: true,
        headers: batchKey,
        body: batchBody,
      });
      expect(again.headers['idempotent-replayed']).to.equal('true');
      await call(h, { path: `/records/${pendingId}` });
      await call(h, { path: `/records/${failedId}/history` });
      const page = await call(h, { path: '/records?limit=2&sort_by=status' });
      await call(h, { path: `/records?limit=2&sort_by=status&cursor=${encodeURIComponent(page.body.next_cursor)}` });

      const waiting = (await call(h, { method: 'post', path: '/records', key: true, body: valid })).body.id;
      const done = await call(h, {
        method: 'post',
        path: `/records/${waiting}/process`,
        key: true,
        headers: { Prefer: 'wait=10' },
      });
      expect(done.status).to.equal(200);
      // no worker for this queue: the record stays queued, so the answer is 202
      const idle = await createHarness({ env: { API_KEYS: KEY } });
      try {
        const id = (await call(idle, { method: 'post', path: '/records', key: true, body: valid })).body.id;
        expect((await call(idle, { method: 'post', path: `/records/${id}/process`, key: true })).status).to.equal(202);
        await call(idle, { method: 'post', path: `/records/${id}/process`, key: true }); // ALREADY_QUEUED
      } finally {
        await idle.close();
      }
      await call(h, { method: 'post', path: `/records/${failedId}/process`, key: true }); // ALREADY_PROCESSED
      await call(h, { method: 'post', path: `/records/${failedId}/retry`, key: true });
      await call(h, { method: 'post', path: `/records/${pendingId}/retry`, key: true }); // NOT_FAILED
      const bulk = { filter: { category: 'lead' }, limit: 10 };
      await call(h, { method: 'post', path: '/records/retry', key: true, body: bulk });
      await call(h, { method: 'post', path: '/records/retry', key: true, body: { filter: {}, limit: 0 } });
      const csv = await call(h, { path: '/records?format=csv' });
      expect(csv.headers['content-type']).to.match(/^text\/csv/);
    });

    it('records: the errors of each operation', async () => {
      await call(h, { method: 'post', path: '/records', key: true, body: { source: 'x' } });
      const invalid = await call(h, {
        method: 'post',
        path: '/records/batch',
        key: true,
        body: { records: [valid, { ...valid, source: '' }] },
      });
      expect(invalid.body.error.details[0].field).to.equal('body.records.1.source');
      const idem = { 'Idempotency-Key': `k-${randomUUID()}` };
      await call(h, { method: 'post', path: '/records', key: true, headers: idem, body: valid });
      const reused = await call(h, {
        method: 'post',
        path: '/records',
        key: true,
        headers: idem,
        body: { ...valid, source: 'other' },
      });
      expect(reused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
      const batchKey = { 'Idempotency-Key': `b-${randomUUID()}` };
      await call(h, {
        method: 'post',
        path: '/records/batch',
        key: true,
        headers: batchKey,
        body: { records: [valid] },
      });
      const batchReused = await call(h, {
        method: 'post',
        path: '/records/batch',
        key: true,
        headers: batchKey,
        body: { records: [valid, valid] },
      });
      expect(batchReused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
      await call(h, { path: '/records?limit=0' });
      await call(h, { path: '/records?cursor=not-a-cursor' });
      for (const path of [`/records/${UNKNOWN_ID}`, '/records/not-a-uuid', `/records/${UNKNOWN_ID}/history`]) {
        await call(h, { path });
      }
      for (const action of ['process', 'retry']) {
        await call(h, { method: 'post', path: `/records/${UNKNOWN_ID}/${action}`, key: true });
      }
    });

    it('every write: 400, 401, 413 and 415', async () => {
      for (const op of OPERATIONS.filter((o) => o.access === 'write')) {
        const path = op.path.replace('{id}', pendingId).replace('{delivery_id}', UNKNOWN_ID);
        const { method } = op;
        await call(h, { method, path, body: valid });
        await call(h, { method, path, key: true, type: 'application/json', body: '{"source": ' });
        await call(h, { method, path, key: true, body: { ...valid, payload: { pad: 'x'.repeat(2000) } } });
        await call(h, { method, path, key: true, type: 'text/plain', body: 'hello' });
      }
    });

    it('every write: 429 once the rate limit is spent', async () => {
      const limited = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '1' } });
      try {
        await call(limited, { method: 'post', path: '/records', body: valid });
        for (const op of OPERATIONS.filter((o) => o.access === 'write')) {
          const path = op.path.replace('{id}', UNKNOWN_ID).replace('{delivery_id}', UNKNOWN_ID);
          const res = await call(limited, { method: op.method, path, body: valid });
          expect(res.status).to.equal(429);
        }
      } finally {
        await limited.close();
      }
    });

    it('every write and the queue UI: 429 once a client address spent AUTH_FAILURES_PER_MINUTE wrong keys', async () => {
      const guarded = await createHarness({ env: { API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '1' } });
      try {
        const wrong = { 'X-API-Key': 'not-the-key' };
        expect(
          (await call(guarded, { method: 'post', path: '/records', headers: wrong, body: valid })).status,
        ).to.equal(401);
        const board = await call(guarded, { path: '/admin/queues', headers: { 'X-API-Key': KEY } });
        expect(board.status).to.equal(429);
        for (const op of OPERATIONS.filter((o) => o.access === 'keyed')) {
          const res = await call(guarded, { path: op.path.replace('{id}', UNKNOWN_ID), headers: { 'X-API-Key': KEY } });
          expect(res.status).to.equal(429);
        }
      } finally {
        await guarded.close();
      }
    });

    it('webhooks: created, read, listed, changed, their deliveries, redelivered and deleted; their errors', async () => {
      const receiver = await startWebhookReceiver();
      const open = await createHarness({
        env: { API_KEYS: KEY, WEBHOOK_ALLOW_PRIVATE_URLS: 'true' },
        worker: true,
      });
      try {
        const body = { url: receiver.url, events: ['record.created'] };
        const created = (await call(open, { method: 'post', path: '/webhooks', key: true, body })).body;
        await call(open, { method: 'post', path: '/webhooks', key: true, body: { ...body, events: [] } });
        await call(open, { path: '/webhooks', key: true });
        await call(open, { path: '/webhooks' });
        await call(open, { path: `/webhooks/${created.id}`, key: true });
        await call(open, { path: `/webhooks/${created.id}` });
        await call(open, { path: `/webhooks/${created.id}/deliveries` });
        await call(open, { path: `/webhooks/${UNKNOWN_ID}`, key: true });
        const patch = { method: 'patch' as const, path: `/webhooks/${created.id}`, key: true };
        await call(open, { ...patch, body: { description: 'crm' } });
        await call(open, { ...patch, body: { url: 'ftp://x' } });
        await call(open, { ...patch, path: `/webhooks/${UNKNOWN_ID}`, body: { enabled: true } });
        await call(open, { method: 'post', path: '/records', key: true, body: valid });
        await receiver.waitFor(1);
        const log = `/webhooks/${created.id}/deliveries`;
        let page = await call(open, { path: log, key: true });
        for (const deadline = Date.now() + 10_000; page.body.items[0]?.status !== 'delivered';) {
          if (Date.now() > deadline) throw new Error('not delivered');
          await new Promise((r) => setTimeout(r, 50));
          page = await call(open, { path: log, key: true });
        }
        await call(open, { path: `${log}?status=lost`, key: true });
        await call(open, { path: `/webhooks/${UNKNOWN_ID}/deliveries`, key: true });
        const again = `${log}/${page.body.items[0].id}/redeliver`;
        expect((await call(open, { method: 'post', path: again, key: true })).status).to.equal(202);
        await call(open, { method: 'post', path: `${log}/${UNKNOWN_ID}/redeliver`, key: true });
        await call(open, {
          method: 'post',
          path: `/webhooks/${UNKNOWN_ID}/deliveries/${UNKNOWN_ID}/redeliver`,
          key: true,
        });
        const rotate = { method: 'post' as const, path: `/webhooks/${created.id}/rotate-secret`, key: true };
        await call(open, { ...rotate, body: { grace_seconds: 60 } });
        await call(open, { ...rotate, body: { grace_seconds: -1 } });
        await call(open, { ...rotate, path: `/webhooks/${UNKNOWN_ID}/rotate-secret` });
        await call(open, { method: 'delete', path: `/webhooks/${created.id}`, key: true });
        await call(open, { method: 'delete', path: `/webhooks/${created.id}`, key: true });
      } finally {
        await open.close();
        await receiver.close();
      }
    });

    it('GET /events: the stream, its 422 and its 503', async () => {
      const capped = await createHarness({ env: { EVENTS_MAX_STREAMS: '1' } });
      const server = http.createServer(capped.app.callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
        const stream = await openSse(url);
        const answer = { status: stream.status, headers: Object.fromEntries(stream.headers), body: null, text: ': ok' };
        expect(docs.problem('GET', '/events', answer)).to.equal(null);
        await call(capped, { path: '/events' }); // the one stream allowed is open: 503
        stream.close();
        await call(capped, { path: '/events?last_event_id=x' });
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await capped.close();
      }
    });

    it('reports, operations and the queue UI', async () => {
      await call(h, { path: '/reports/summary?status=processed&date_from=2026-01-01' });
      await call(h, { path: '/reports/summary?status=done' });
      await call(h, { path: '/reports/timeseries?bucket=hour' });
      await call(h, { path: '/reports/timeseries?bucket=week' });
      await call(h, { path: '/reports/summary', headers: { Accept: 'text/csv' } });
      await call(h, { path: '/reports/timeseries?format=csv' });
      await call(h, { path: '/reports/latency?bucket=hour' });
      await call(h, { path: '/reports/latency?bucket=week' });
      await call(h, { path: '/reports/failures?category=lead' });
      await call(h, { path: '/reports/failures?limit=0' });
      await call(h, { path: '/health' });
      await call(h, { path: '/health/live' });
      await call(h, { path: '/categories' });
      await call(h, { path: '/version' });
      await call(h, { path: '/metrics' });
      await call(h, { path: '/openapi.json' });
      await call(h, { path: '/docs' });
      await buildDashboard();
      await call(h, { path: '/dashboard' });
      await call(h, { path: '/admin/queues' });
      await call(h, { path: '/admin/queues', key: true });
    });

    it('GET /health: 503 when the database is gone', async () => {
      const down = await createHarness();
      try {
        await down.db.close();
        expect((await call(down, { path: '/health' })).status).to.equal(503);
      } finally {
        down.db.close = async () => undefined;
        await down.close();
      }
    });

    it('the catch-all: 500 INTERNAL_ERROR and 503 SERVICE_UNAVAILABLE', async () => {
      // a database without its tables: the query fails, and nothing of it reaches the client
      const bare = await createTestDatabase();
      const unmigrated = createDatabase(bare.url);
      // nothing listens on port 1: the connection is refused
      const unreachable = createDatabase('postgres://workflow@127.0.0.1:1/none', { logger: h.logger });
      try {
        for (const [db, status, code] of [
          [unmigrated, 500, 'INTERNAL_ERROR'],
          [unreachable, 503, 'SERVICE_UNAVAILABLE'],
        ] as const) {
          const app = createApp({ ...h.deps, config: { ...h.config, apiKeys: [] }, db });
          const res = await supertest(app.callback()).get(`/records/${UNKNOWN_ID}`);
          expect(res.status).to.equal(status);
          expect(res.body.error.code).to.equal(code);
          expect(JSON.stringify(res.body)).not.to.match(/select|relation|table|127\.0\.0\.1/i);
          expect(docs.problem('GET', `/records/${UNKNOWN_ID}`, res)).to.equal(null);
        }
      } finally {
        await unmigrated.close();
        await unreachable.close();
        await bare.drop();
      }
    });

    it('unknown routes and methods answer the documented error body', async () => {
      expect((await call(h, { path: '/nowhere' })).status).to.equal(404);
      expect((await call(h, { method: 'delete', path: `/records/${pendingId}`, key: true })).status).to.equal(405);
    });

    it('every documented answer was produced above', () => {
      const missing = docs.documented().filter((r) => !docs.seen.has(r));
      expect(missing, 'documented but never seen').to.deep.equal([]);
      expect([...docs.defaultCodes].sort()).to.deep.equal(['INTERNAL_ERROR', 'SERVICE_UNAVAILABLE']);
    });
  });
});
