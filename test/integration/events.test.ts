import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { createApp } from '../../api/app.js';
import { createEventsHub, STREAM_BUFFER_BYTES } from '../../api/events-hub.js';
import { createDatabase, type EventStreamSettings } from '../../shared/index.js';
import { createTestDatabase } from '../helpers/database.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { openSse, type SseStream } from '../helpers/sse-client.js';

const lead = { source: 'crm', category: 'lead', payload: { priority: 5 } };

describe('GET /events', function () {
  this.timeout(90_000);
  let h: Harness;
  let server: http.Server;
  let base: string;
  const streams: SseStream[] = [];

  async function start(env: Record<string, string> = {}, worker = true, events: Partial<EventStreamSettings> = {}) {
    h = await createHarness({ env, worker });
    const app = createApp({ ...h.deps, config: { ...h.config, events: { ...h.config.events, ...events } } });
    server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  const open = async (path = '/events', headers: Record<string, string> = {}) => {
    const s = await openSse(`${base}${path}`, headers);
    streams.push(s);
    return s;
  };
  const eventIds = async (after: number) =>
    (
      (await h.db.knex('record_events').select('id').where('id', '>', after).orderBy('id')) as Array<{ id: number }>
    ).map((r) => Number(r.id));

  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await h?.close();
  });

  it('streams every change live: created, processed, failed and retried, ids only growing', async () => {
    await start();
    const s = await open();
    expect(s.status).to.equal(200);
    expect(s.headers.get('content-type')).to.match(/^text\/event-stream/);
    const ok = await h.http.post('/records?process=true').send(lead).expect(201);
    const bad = await h.http
      .post('/records?process=true')
      .send({ ...lead, payload: { priority: 'x' } })
      .expect(201);
    await h.waitForTerminal(bad.body.id);
    await h.http.post(`/records/${bad.body.id}/retry`).expect(202);
    const events = await s.waitFor(6);
    const ids = events.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).to.deep.equal(ids);
    expect(new Set(ids).size).to.equal(ids.length);
    const of = (id: string) => events.filter((e) => e.data.record_id === id).map((e) => e.event);
    expect(of(ok.body.id)).to.deep.equal(['record.created', 'record.processed']);
    expect(of(bad.body.id).slice(0, 3)).to.deep.equal(['record.created', 'record.failed', 'record.retried']);
    const failed = events.find((e) => e.event === 'record.failed')!;
    expect(failed.data).to.deep.include({
      record_id: bad.body.id,
      category: 'lead',
      source: 'crm',
      from: 'pending',
      to: 'failed',
      attempt: 1,
      error: 'invalid priority',
    });
    expect(Object.keys(failed.data).sort()).to.deep.equal(
      ['at', 'attempt', 'category', 'error', 'from', 'record_id', 'source', 'to'].sort(),
    );
    const created = events.find((e) => e.event === 'record.created')!;
    expect(created.data).to.include({ from: null, to: 'pending', attempt: 0 });
  });

  it('reconnecting with Last-Event-ID at random points of a 1,000-event burst: the union is exactly the burst', async () => {
    await start({}, false);
    const before = (await eventIds(0)).at(-1) ?? 0;
    let seed = Date.now() % 2_147_483_647;
    const random = () => (seed = (seed * 16_807) % 2_147_483_647) / 2_147_483_647;
    const burst = (async () => {
      for (let i = 0; i < 10; i++) {
        await h.http
          .post('/records/batch')
          .send({ records: Array(100).fill(lead) })
          .expect(201);
      }
    })();
    const seen: number[] = [];
    let last = before;
    let reconnects = 0;
    while (seen.length < 1000) {
      const s = await open('/events', { 'Last-Event-ID': String(last) });
      const take = Math.min(1 + Math.floor(random() * 200), 1000 - seen.length);
      await s.waitFor(take, 20_000);
      s.close();
      await s.ended;
      seen.push(...s.events.map((e) => e.id));
      last = seen.at(-1) ?? last;
      reconnects++;
    }
    await burst;
    const burstIds = await eventIds(before);
    expect(burstIds, `seed ${seed}`).to.have.length(1000);
    expect(seen, `seed ${seed}, ${reconnects} connections`).to.deep.equal(burstIds);
    expect(reconnects).to.be.greaterThan(3);
  });

  it('filters by category, source and record_id; ?last_event_id= resumes as the header does', async () => {
    await start({}, false);
    const start0 = (await eventIds(0)).at(-1) ?? 0;
    const a = await h.http.post('/records').send(lead).expect(201);
    await h.http
      .post('/records')
      .send({ ...lead, category: 'invoice' })
      .expect(201);
    await h.http
      .post('/records')
      .send({ ...lead, source: 'web' })
      .expect(201);
    const byCategory = await open(`/events?category=invoice&last_event_id=${start0}`);
    const bySource = await open(`/events?source=web&last_event_id=${start0}`);
    const byRecord = await open(`/events?record_id=${a.body.id}`, { 'Last-Event-ID': String(start0) });
    await Promise.all([byCategory.waitFor(1), bySource.waitFor(1), byRecord.waitFor(1)]);
    // a later matching event arrives live on the same stream
    await h.http
      .post('/records')
      .send({ ...lead, category: 'invoice' })
      .expect(201);
    await byCategory.waitFor(2);
    await new Promise((r) => setTimeout(r, 300));
    expect(byCategory.events.map((e) => e.data.category)).to.deep.equal(['invoice', 'invoice']);
    expect(bySource.events.map((e) => e.data.source)).to.deep.equal(['web']);
    expect(byRecord.events.map((e) => e.data.record_id)).to.deep.equal([a.body.id]);
  });

  it('bad parameters are 422', async () => {
    await start({}, false);
    for (const path of ['/events?category=', '/events?record_id=nope', '/events?last_event_id=-1', '/events?x=1']) {
      expectContractError(await h.http.get(path), 422, 'VALIDATION_ERROR');
    }
    expectContractError(await h.http.get('/events').set('Last-Event-ID', 'abc'), 422, 'VALIDATION_ERROR');
  });

  it('a heartbeat comment on every EVENTS_HEARTBEAT_MS; past EVENTS_MAX_STREAMS, 503', async () => {
    await start({}, false, { heartbeatMs: 100, maxStreams: 1 });
    const s = await open();
    await new Promise((r) => setTimeout(r, 350));
    expect(s.comments.filter((c) => c === 'heartbeat').length).to.be.at.least(2);
    const refused = await fetch(`${base}/events`);
    expect(refused.status).to.equal(503);
    const refusedBody = (await refused.json()) as { error: { code: string; message: string } };
    expect(refusedBody.error).to.deep.equal({
      code: 'SERVICE_UNAVAILABLE',
      message: 'too many open event streams (1)',
    });
    s.close();
    await s.ended;
    await new Promise((r) => setTimeout(r, 100));
    const again = await open();
    expect(again.status).to.equal(200);
    expect(h.config.events.heartbeatMs).to.equal(15_000);
  });

  it('shutdown ends every stream', async () => {
    await start({}, false);
    const s = await open();
    await h.http.post('/records').send(lead).expect(201);
    await s.waitFor(1);
    const events = createEventsHub({
      db: h.db,
      redis: h.deps.redis,
      prefix: h.config.queuePrefix,
      settings: h.config.events,
      logger: h.logger,
    });
    const other = await events.open({}, null);
    let ended = false;
    other.on('end', () => (ended = true)).resume();
    await events.close();
    await new Promise((r) => setImmediate(r));
    expect(ended).to.equal(true);
    await expectRejects(events.open({}, null), /shutting down/);
    // the app's own streams end with its shutdown signal (the harness aborts it)
    await h.close();
    await s.ended;
    h = undefined as unknown as Harness;
  });

  it('a hub that could not read the log at its first stream tries again at the next', async () => {
    await start({}, false);
    const bare = await createTestDatabase();
    const db = createDatabase(bare.url);
    const events = createEventsHub({
      db,
      redis: h.deps.redis,
      prefix: h.config.queuePrefix,
      settings: h.config.events,
      logger: h.logger,
    });
    try {
      await expectRejects(events.open({}, null), /record_events/);
      await db.migrate();
      const stream = await events.open({}, null);
      expect(events.size).to.equal(1);
      stream.resume();
    } finally {
      await events.close();
      await db.close();
      await bare.drop();
    }
  });

  it('a client that does not read is disconnected once its buffer passes the bound', async () => {
    await start({}, false);
    const events = createEventsHub({
      db: h.db,
      redis: h.deps.redis,
      prefix: h.config.queuePrefix,
      settings: h.config.events,
      logger: h.logger,
    });
    const stream = await events.open({}, 0); // never read
    let closed = false;
    stream.on('close', () => (closed = true));
    // each event frame is about 250 bytes: enough of them to pass the bound
    const batches = Math.ceil(STREAM_BUFFER_BYTES / 250 / 1000) + 1;
    for (let i = 0; i < batches; i++) {
      await h.http
        .post('/records/batch')
        .send({ records: Array(1000).fill(lead) })
        .expect(201);
    }
    const deadline = Date.now() + 10_000;
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(closed).to.equal(true);
    expect(events.size).to.equal(0);
    expect(h.logs.some((l) => l.msg === 'event stream client too slow: disconnected')).to.equal(true);
    await events.close();
  });
});

async function expectRejects(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(err?.message).to.match(message);
}
