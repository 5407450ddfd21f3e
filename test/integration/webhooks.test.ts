import { expect } from 'chai';
import type { Job } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import { createDeliveryHandler } from '../../worker/deliver-webhook.js';
import { createDeliveryRepair } from '../../worker/delivery-reconciler.js';
import { createWebhookQueue, type DeliveryJobData } from '../../shared/index.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startWebhookReceiver, type ReceivedDelivery, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const KEY = 'webhooks-test-key';
const ALL_EVENTS = ['record.created', 'record.processed', 'record.failed', 'record.retried'];
const lead = { source: 'crm', category: 'lead', payload: { priority: 5 } };
const UNKNOWN = '9b2f3c3e-6c1a-4d7e-9f00-000000000000';

describe('webhooks', function () {
  this.timeout(60_000);
  let h: Harness;
  let receiver: WebhookReceiver;

  const open = (env: Record<string, string> = {}, worker = true) =>
    createHarness({
      env: { API_KEYS: KEY, WEBHOOK_ALLOW_PRIVATE_URLS: 'true', WEBHOOK_BACKOFF_MS: '20', ...env },
      worker,
    });
  const subscribe = async (target: Harness, body: object) => {
    const res = await target.http.post('/webhooks').set('X-API-Key', KEY).send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as { id: string; secret: string };
  };
  const deliveries = async (target: Harness, id: string, query = '') =>
    (await target.http.get(`/webhooks/${id}/deliveries${query}`).set('X-API-Key', KEY).expect(200)).body as {
      items: Array<{
        id: string;
        status: string;
        attempts: number;
        last_status_code: number | null;
        last_error: string;
      }>;
      next_cursor: string | null;
    };
  const waitForDelivery = async (target: Harness, id: string, status: string) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const page = await deliveries(target, id);
      if (page.items.length > 0 && page.items.every((d) => d.status === status)) return page.items;
      if (Date.now() > deadline) throw new Error(`deliveries not ${status}: ${JSON.stringify(page.items)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  beforeEach(async () => {
    receiver = await startWebhookReceiver();
  });
  afterEach(async () => {
    await h?.close();
    await receiver.close();
  });

  describe('subscriptions', () => {
    beforeEach(async () => {
      h = await open({}, false);
    });

    it('create answers the whsec_ secret once; read, list, patch and delete never show it', async () => {
      const created = await subscribe(h, { url: receiver.url, events: ['record.processed'], description: 'crm' });
      expect(created.secret).to.match(/^whsec_[A-Za-z0-9+/]+=*$/);
      expect(Object.keys(created).sort()).to.deep.equal(
        ['categories', 'created_at', 'description', 'enabled', 'events', 'id', 'secret', 'url'].sort(),
      );
      const read = await h.http.get(`/webhooks/${created.id}`).set('X-API-Key', KEY).expect(200);
      expect(read.body).to.not.have.property('secret');
      expect(read.body).to.include({ url: receiver.url, enabled: true, description: 'crm', categories: null });
      const list = await h.http.get('/webhooks').set('X-API-Key', KEY).expect(200);
      expect(list.body.items.map((s: { id: string }) => s.id)).to.deep.equal([created.id]);
      expect(JSON.stringify(list.body)).to.not.include(created.secret);
      const patched = await h.http
        .patch(`/webhooks/${created.id}`)
        .set('X-API-Key', KEY)
        .send({ events: ['record.failed'], categories: ['lead'], enabled: false })
        .expect(200);
      expect(patched.body).to.include({ enabled: false });
      expect(patched.body.events).to.deep.equal(['record.failed']);
      expect(patched.body.categories).to.deep.equal(['lead']);
      await h.http.delete(`/webhooks/${created.id}`).set('X-API-Key', KEY).expect(204);
      expectContractError(await h.http.get(`/webhooks/${created.id}`).set('X-API-Key', KEY), 404, 'WEBHOOK_NOT_FOUND');
      expectContractError(
        await h.http.delete(`/webhooks/${created.id}`).set('X-API-Key', KEY),
        404,
        'WEBHOOK_NOT_FOUND',
      );
    });

    it('every call needs the key when API_KEYS is set, reads included', async () => {
      const created = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      for (const [method, path] of [
        ['get', '/webhooks'],
        ['get', `/webhooks/${created.id}`],
        ['get', `/webhooks/${created.id}/deliveries`],
        ['delete', `/webhooks/${created.id}`],
      ] as const) {
        expectContractError(await h.http[method](path), 401, 'UNAUTHORIZED');
      }
      expectContractError(await h.http.patch(`/webhooks/${created.id}`).send({ enabled: false }), 401, 'UNAUTHORIZED');
    });

    it('bad input is 422, unknown or malformed ids 404', async () => {
      const bad = [
        {},
        { url: receiver.url, events: [] },
        { url: receiver.url, events: ['record.deleted'] },
        { url: receiver.url, events: ['record.created'], colour: 'red' },
        { url: 'ftp://example.com/hook', events: ['record.created'] },
        { url: 'not a url', events: ['record.created'] },
        { url: receiver.url, events: ['record.created'], categories: [] },
        { url: receiver.url, events: ['record.created'], description: 'nul \u0000 inside' },
        { url: receiver.url, events: ['record.created'], categories: ['tab\there'] },
      ];
      for (const body of bad) {
        expectContractError(await h.http.post('/webhooks').set('X-API-Key', KEY).send(body), 422, 'VALIDATION_ERROR');
      }
      const created = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      for (const body of [{}, { enabled: 'maybe' }, { url: 'gopher://x' }]) {
        const res = await h.http.patch(`/webhooks/${created.id}`).set('X-API-Key', KEY).send(body);
        expectContractError(res, 422, 'VALIDATION_ERROR');
      }
      for (const id of [UNKNOWN, 'not-an-id']) {
        expectContractError(await h.http.get(`/webhooks/${id}`).set('X-API-Key', KEY), 404, 'WEBHOOK_NOT_FOUND');
        const patch = await h.http.patch(`/webhooks/${id}`).set('X-API-Key', KEY).send({ enabled: true });
        expectContractError(patch, 404, 'WEBHOOK_NOT_FOUND');
        const redeliver = await h.http.post(`/webhooks/${id}/deliveries/${UNKNOWN}/redeliver`).set('X-API-Key', KEY);
        expectContractError(redeliver, 404, 'WEBHOOK_NOT_FOUND');
      }
      const missing = await h.http
        .post(`/webhooks/${created.id}/deliveries/0190e7a0-0000-7000-8000-000000000000/redeliver`)
        .set('X-API-Key', KEY);
      expectContractError(missing, 404, 'DELIVERY_NOT_FOUND');
      const malformed = await h.http.post(`/webhooks/${created.id}/deliveries/nope/redeliver`).set('X-API-Key', KEY);
      expectContractError(malformed, 404, 'DELIVERY_NOT_FOUND');
      const badStatus = await h.http.get(`/webhooks/${created.id}/deliveries?status=lost`).set('X-API-Key', KEY);
      expectContractError(badStatus, 422, 'VALIDATION_ERROR');
    });

    it('DELETE drops the pending deliveries', async () => {
      const created = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      expect((await deliveries(h, created.id)).items.map((d) => d.status)).to.deep.equal(['pending']);
      await h.http.delete(`/webhooks/${created.id}`).set('X-API-Key', KEY).expect(204);
      expect(await h.db.knex('webhook_deliveries').where({ subscription_id: created.id })).to.deep.equal([]);
    });
  });

  describe('the SSRF guard', () => {
    const REFUSED: Array<[string, string]> = [
      ['http://127.0.0.1/hook', 'loopback'],
      ['http://127.8.9.10/hook', 'loopback'],
      ['http://0x7f.1/hook', 'loopback'],
      ['http://2130706433/hook', 'loopback'],
      ['http://localhost:9/hook', 'loopback'],
      ['http://10.1.2.3/hook', 'private'],
      ['http://172.20.0.1/hook', 'private'],
      ['http://192.168.1.1/hook', 'private'],
      ['http://100.64.0.1/hook', 'private'],
      ['http://169.254.169.254/latest/meta-data', 'link-local'],
      ['http://0.0.0.0/hook', 'unspecified'],
      ['http://224.0.0.1/hook', 'multicast'],
      ['http://[::1]/hook', 'loopback'],
      ['http://[::]/hook', 'unspecified'],
      ['http://[fe80::1]/hook', 'link-local'],
      ['http://[fc00::1]/hook', 'unique-local'],
      ['http://[fd12:3456::1]/hook', 'unique-local'],
      ['http://[ff02::1]/hook', 'multicast'],
      ['http://[::ffff:127.0.0.1]/hook', 'IPv4-mapped'],
      ['http://[::ffff:8.8.8.8]/hook', 'IPv4-mapped'],
      ['http://[::ffff:7f00:1]/hook', 'IPv4-mapped'],
    ];

    it('refuses at creation (422 naming the address class) unless WEBHOOK_ALLOW_PRIVATE_URLS=true', async () => {
      h = await createHarness({ env: { API_KEYS: KEY } });
      for (const [url, kind] of REFUSED) {
        const res = await h.http
          .post('/webhooks')
          .set('X-API-Key', KEY)
          .send({ url, events: ['record.created'] });
        expectContractError(res, 422, 'VALIDATION_ERROR');
        expect(res.body.error.details[0].message, url).to.include(`a ${kind} address`);
        expect(res.body.error.details[0].field).to.equal('body.url');
      }
      const created = await subscribe(h, { url: 'https://93.184.216.34/hook', events: ['record.created'] });
      const patched = await h.http
        .patch(`/webhooks/${created.id}`)
        .set('X-API-Key', KEY)
        .send({ url: 'http://[::1]:8080/' });
      expectContractError(patched, 422, 'VALIDATION_ERROR');
      const unresolved = await h.http
        .post('/webhooks')
        .set('X-API-Key', KEY)
        .send({ url: 'http://no-such-host.invalid/hook', events: ['record.created'] });
      expectContractError(unresolved, 422, 'VALIDATION_ERROR');
      expect(unresolved.body.error.details[0].message).to.include('does not resolve');
    });

    it('checks again at send: a delivery to an address now refused fails with the reason, nothing sent', async () => {
      h = await open({}, false);
      const created = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [row] = (await h.db.knex('webhook_deliveries').select('id', 'job_seq')) as Array<{
        id: string;
        job_seq: number;
      }>;
      const queue = createWebhookQueue(h.deps.redis, h.config.queuePrefix);
      const deliver = createDeliveryHandler({
        webhooks: h.db.webhooks,
        queue,
        settings: { ...h.config.webhooks, allowPrivateUrls: false },
        logger: h.logger,
      });
      const outcome = await deliver({
        data: { deliveryId: row!.id, seq: Number(row!.job_seq) },
      } as Job<DeliveryJobData>);
      expect(outcome).to.equal('failed');
      const [failed] = (await deliveries(h, created.id)).items;
      expect(failed).to.include({ status: 'failed', attempts: 1 });
      expect(failed!.last_error).to.match(/resolves to a loopback address \(127\.0\.0\.1\)/);
      expect(receiver.received).to.have.length(0);
    });
  });

  describe('deliveries', () => {
    const verified = (secret: string, d: ReceivedDelivery) =>
      new Webhook(secret).verify(d.body, {
        'webhook-id': d.headers['webhook-id']!,
        'webhook-timestamp': d.headers['webhook-timestamp']!,
        'webhook-signature': d.headers['webhook-signature']!,
      });

    it('every event type, signed (checked by the standardwebhooks package), the record as GET returns it', async () => {
      h = await open();
      const { secret } = await subscribe(h, { url: receiver.url, events: ALL_EVENTS });
      const ok = await h.http.post('/records?process=true').set('X-API-Key', KEY).send(lead).expect(201);
      const bad = await h.http
        .post('/records?process=true')
        .set('X-API-Key', KEY)
        .send({ ...lead, payload: { priority: 'n/a' } })
        .expect(201);
      await h.waitForTerminal(bad.body.id);
      await h.http.post(`/records/${bad.body.id}/retry`).set('X-API-Key', KEY).expect(202);
      await h.waitForTerminal(bad.body.id);
      const got = await receiver.waitFor(6).catch((err: Error) => {
        throw new Error(`${err.message}: ${receiver.received.map((d) => d.json.type).join(', ')}`);
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(receiver.received).to.have.length(6);
      for (const d of got) {
        expect(verified(secret, d)).to.deep.equal(d.json);
        expect(d.headers['webhook-id']).to.match(/^[0-9a-f-]{36}$/);
        expect(d.headers['content-type']).to.equal('application/json');
        expect(Object.keys(d.json).sort()).to.deep.equal(['data', 'timestamp', 'type']);
      }
      const of = (id: string) =>
        got
          .filter((d) => d.json.data.record.id === id)
          .map((d) => d.json.type)
          .sort();
      expect(of(ok.body.id)).to.deep.equal(['record.created', 'record.processed']);
      expect(of(bad.body.id)).to.deep.equal(
        ['record.created', 'record.failed', 'record.failed', 'record.retried'].sort(),
      );
      const processed = got.find((d) => d.json.type === 'record.processed')!;
      const current = await h.http.get(`/records/${ok.body.id}`).expect(200);
      expect(processed.json.data.record).to.deep.equal(current.body);
      const created = got.find((d) => d.json.type === 'record.created' && d.json.data.record.id === ok.body.id)!;
      expect(created.json.data.record).to.include({ status: 'pending' });
      expect(new Set(got.map((d) => d.headers['webhook-id'])).size).to.equal(6);
      // a tampered body does not verify
      expect(() => verified(secret, { ...processed, body: processed.body.replace('processed', 'failed') })).to.throw();
    });

    it('with WEBHOOK_SECRET_KEY the stored secret is encrypted, and deliveries still verify', async () => {
      h = await open({ WEBHOOK_SECRET_KEY: 'a'.repeat(64) });
      const { id, secret } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      const [row] = (await h.db.knex('webhook_subscriptions').where({ id })) as Array<{ secret: string }>;
      expect(row!.secret).to.match(/^v1:/);
      expect(row!.secret).to.not.include(secret.slice(6));
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [d] = await receiver.waitFor(1);
      expect(verified(secret, d!)).to.deep.equal(d!.json);
    });

    it('rotate-secret: both secrets sign during the grace period, then only the new one', async () => {
      h = await open();
      const { id, secret: first } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      const rotated = await h.http
        .post(`/webhooks/${id}/rotate-secret`)
        .set('X-API-Key', KEY)
        .send({ grace_seconds: 3600 })
        .expect(200);
      const second = rotated.body.secret as string;
      expect(second)
        .to.match(/^whsec_/)
        .and.not.equal(first);
      expect(rotated.body.id).to.equal(id);
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [during] = await receiver.waitFor(1);
      expect(during!.headers['webhook-signature']!.split(' ')).to.have.length(2);
      expect(verified(first, during!)).to.deep.equal(during!.json);
      expect(verified(second, during!)).to.deep.equal(during!.json);
      // no body: the default grace; grace_seconds 0 ends the old secret at once
      await h.http.post(`/webhooks/${id}/rotate-secret`).set('X-API-Key', KEY).expect(200);
      const third = (
        await h.http.post(`/webhooks/${id}/rotate-secret`).set('X-API-Key', KEY).send({ grace_seconds: 0 }).expect(200)
      ).body.secret as string;
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [, after] = await receiver.waitFor(2);
      expect(after!.headers['webhook-signature']!.split(' ')).to.have.length(1);
      expect(verified(third, after!)).to.deep.equal(after!.json);
      expect(() => verified(second, after!)).to.throw();
      for (const body of [{ grace_seconds: -1 }, { grace_seconds: 8 * 86_400 }, { grace: 1 }]) {
        const res = await h.http.post(`/webhooks/${id}/rotate-secret`).set('X-API-Key', KEY).send(body);
        expectContractError(res, 422, 'VALIDATION_ERROR');
      }
      const unknown = await h.http.post(`/webhooks/${UNKNOWN}/rotate-secret`).set('X-API-Key', KEY);
      expectContractError(unknown, 404, 'WEBHOOK_NOT_FOUND');
    });

    it('category filter: only records of the listed categories', async () => {
      h = await open();
      await subscribe(h, { url: receiver.url, events: ['record.created'], categories: ['invoice'] });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const invoice = await h.http
        .post('/records/batch')
        .set('X-API-Key', KEY)
        .send({ records: [{ ...lead, category: 'invoice' }, lead, { ...lead, category: 'invoice' }] })
        .expect(201);
      await receiver.waitFor(2);
      await new Promise((r) => setTimeout(r, 200));
      expect(receiver.received.map((d) => d.json.data.record.category)).to.deep.equal(['invoice', 'invoice']);
      expect(receiver.received.map((d) => d.json.data.record.id).sort()).to.deep.equal(
        [invoice.body.items[0].id, invoice.body.items[2].id].sort(),
      );
    });

    it('a receiver that fails is retried with the same webhook-id, then delivered', async () => {
      h = await open({ WEBHOOK_BACKOFF_MS: '150' });
      const { id } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      receiver.respond = (_d, n) => (n <= 2 ? 503 : 204);
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const got = await receiver.waitFor(3);
      expect(new Set(got.map((d) => d.headers['webhook-id'])).size).to.equal(1);
      expect(new Set(got.map((d) => d.body)).size).to.equal(1);
      // doubling: never sooner than 150 ms, then 300 ms
      expect(got[1]!.at - got[0]!.at).to.be.at.least(140);
      expect(got[2]!.at - got[1]!.at).to.be.at.least(290);
      const [delivery] = await waitForDelivery(h, id, 'delivered');
      expect(delivery).to.include({ id: got[0]!.headers['webhook-id'], attempts: 3, last_status_code: 204 });
    });

    it('failed after WEBHOOK_MAX_ATTEMPTS; redeliver sends it again under the same webhook-id', async () => {
      h = await open({ WEBHOOK_MAX_ATTEMPTS: '3' });
      const { id } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      receiver.respond = () => 500;
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [failed] = await waitForDelivery(h, id, 'failed');
      expect(failed).to.include({ attempts: 3, last_status_code: 500, last_error: 'HTTP 500' });
      expect(receiver.received).to.have.length(3);
      receiver.respond = () => 200;
      const res = await h.http
        .post(`/webhooks/${id}/deliveries/${failed!.id}/redeliver`)
        .set('X-API-Key', KEY)
        .expect(202);
      expect(res.body).to.include({ id: failed!.id, status: 'pending' });
      const [delivered] = await waitForDelivery(h, id, 'delivered');
      expect(delivered!.id).to.equal(failed!.id);
      expect(receiver.received.map((d) => d.headers['webhook-id'])).to.deep.equal(Array(4).fill(failed!.id));
    });

    it('a 410 disables the subscription and fails the delivery', async () => {
      h = await open();
      const { id } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      receiver.respond = () => 410;
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const [failed] = await waitForDelivery(h, id, 'failed');
      expect(failed).to.include({ attempts: 1, last_status_code: 410 });
      const sub = await h.http.get(`/webhooks/${id}`).set('X-API-Key', KEY).expect(200);
      expect(sub.body.enabled).to.equal(false);
      // a disabled subscription gets no new deliveries
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      expect((await deliveries(h, id)).items).to.have.length(1);
      expect(receiver.received).to.have.length(1);
    });

    it('no answer (a closed port), a name that does not resolve, a secret that cannot be opened: retried; a disabled subscription: failed', async () => {
      h = await open({ WEBHOOK_MAX_ATTEMPTS: '2', WEBHOOK_TIMEOUT_MS: '500' }, false);
      const closed = await startWebhookReceiver();
      await closed.close(); // nothing listens there now
      const targets = [
        closed.url,
        'http://no-such-host.invalid/hook',
        receiver.url, // its secret is sealed under a key this worker does not have
        receiver.url, // disabled before the send
      ];
      const subs: Array<{ id: string; secret: string }> = [];
      for (const url of targets) subs.push(await subscribe(h, { url, events: ['record.created'] }));
      await h.db.knex('webhook_subscriptions').where({ id: subs[2]!.id }).update({ secret: 'v1:AAAA:BBBB:CCCC' });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      // the delivery to this one was written before it was disabled: it fails at send
      await h.db.knex('webhook_subscriptions').where({ id: subs[3]!.id }).update({ enabled: false });
      const lookup = async (host: string) => {
        if (host === 'no-such-host.invalid') throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
        return ['127.0.0.1'];
      };
      const handler = (allowPrivateUrls: boolean) =>
        createDeliveryHandler({
          webhooks: h.db.webhooks,
          queue: createWebhookQueue(h.deps.redis, h.config.queuePrefix),
          settings: { ...h.config.webhooks, allowPrivateUrls },
          logger: h.logger,
          lookup,
        });
      const deliver = handler(true);
      // resolving the name is the guard's: with the address check on
      const strict = handler(false);
      const rows = (await h.db.knex('webhook_deliveries').select('id', 'subscription_id', 'job_seq')) as Array<{
        id: string;
        subscription_id: string;
        job_seq: number;
      }>;
      const run = async (subscription: string, send = deliver) => {
        const row = (await h.db.knex('webhook_deliveries').where({ subscription_id: subscription }).first()) as {
          id: string;
          job_seq: number;
        };
        return send({ data: { deliveryId: row.id, seq: Number(row.job_seq) } } as Job<DeliveryJobData>);
      };
      expect(rows).to.have.length(4);
      expect(await run(subs[0]!.id)).to.equal('retried');
      expect(await run(subs[1]!.id, strict)).to.equal('retried');
      expect(await run(subs[2]!.id)).to.equal('retried');
      expect(await run(subs[3]!.id)).to.equal('failed');
      const errors = await Promise.all(subs.map(async (s) => (await deliveries(h, s.id)).items[0]!.last_error));
      expect(errors[0]).to.match(/ECONNREFUSED|connect/);
      expect(errors[1]).to.equal('url host no-such-host.invalid does not resolve (ENOTFOUND)');
      expect(errors[2]).to.match(/WEBHOOK_SECRET_KEY is not set/);
      expect(errors[3]).to.equal('the subscription is disabled');
      // the second attempt is the last
      expect(await run(subs[0]!.id)).to.equal('failed');
      const stale = rows.find((r) => r.subscription_id === subs[0]!.id)!;
      const again = await deliver({
        data: { deliveryId: stale.id, seq: Number(stale.job_seq) },
      } as Job<DeliveryJobData>);
      expect(again).to.equal('skipped'); // a job of an earlier schedule finds the row moved on
      // a delivery written for a subscription deleted meanwhile is dropped by its job
      await h.db.knex('webhook_subscriptions').where({ id: subs[1]!.id }).delete();
      const orphan = rows.find((r) => r.subscription_id === subs[1]!.id)!;
      const dropped = await deliver({ data: { deliveryId: orphan.id, seq: 2 } } as Job<DeliveryJobData>);
      expect(dropped).to.equal('skipped');
      expect(await h.db.knex('webhook_deliveries').where({ id: orphan.id })).to.deep.equal([]);
      expect(receiver.received).to.have.length(0);
    });

    it('the delivery log: newest first, status filter, cursor pages', async () => {
      h = await open({}, false);
      const { id } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      await h.http
        .post('/records/batch')
        .set('X-API-Key', KEY)
        .send({ records: Array(5).fill(lead) })
        .expect(201);
      const all = await deliveries(h, id);
      expect(all.items).to.have.length(5);
      expect(all.next_cursor).to.equal(null);
      const ids = all.items.map((d) => d.id);
      expect([...ids].sort().reverse()).to.deep.equal(ids);
      const first = await deliveries(h, id, '?limit=2');
      const second = await deliveries(h, id, `?limit=2&cursor=${first.next_cursor}`);
      const third = await deliveries(h, id, `?limit=2&cursor=${second.next_cursor}`);
      expect([...first.items, ...second.items, ...third.items].map((d) => d.id)).to.deep.equal(ids);
      expect(third.next_cursor).to.equal(null);
      expect((await deliveries(h, id, '?status=delivered')).items).to.deep.equal([]);
      expect((await deliveries(h, id, '?status=pending')).items).to.have.length(5);
    });

    it('the reconciler adds again a due delivery whose job Redis lost; retention prunes delivered rows', async () => {
      h = await open({}, false);
      const { id } = await subscribe(h, { url: receiver.url, events: ['record.created'] });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      const queue = createWebhookQueue(h.deps.redis, h.config.queuePrefix);
      await new Promise((r) => setTimeout(r, 100));
      await queue.obliterate({ force: true });
      expect((await queue.getJobCounts('waiting')).waiting).to.equal(0);
      const repair = createDeliveryRepair({
        db: h.db,
        queue,
        connection: h.deps.redis,
        logger: h.logger,
        graceMs: 0,
        retentionMs: 0,
        eventRetentionMs: 3_600_000,
      });
      expect(await repair.repairLostDeliveries()).to.equal(1);
      expect(await repair.repairLostDeliveries()).to.equal(0); // found alive now
      // a job that finished while its row is still pending (its attempt could not be written) is replaced
      const [pending] = (await h.db.knex('webhook_deliveries').select('id', 'job_seq')) as Array<{
        id: string;
        job_seq: number;
      }>;
      const jobKey = queue.toKey(`${pending!.id}-${pending!.job_seq}`);
      await h.deps.redis.hset(jobKey, 'finishedOn', String(Date.now()));
      expect(await repair.repairLostDeliveries()).to.equal(1);
      expect(await h.deps.redis.hget(jobKey, 'finishedOn')).to.equal(null);
      h.startWorker();
      await waitForDelivery(h, id, 'delivered');
      expect(receiver.received).to.have.length(1);
      await new Promise((r) => setTimeout(r, 5));
      expect(await repair.prune()).to.be.at.least(1);
      expect((await deliveries(h, id)).items).to.deep.equal([]);
      await queue.close();
    });

    it("the worker's metrics: deliveries by outcome, attempt latency, the oldest pending delivery's age", async () => {
      h = await open();
      await subscribe(h, { url: receiver.url, events: ['record.created'] });
      await h.http.post('/records').set('X-API-Key', KEY).send(lead).expect(201);
      await receiver.waitFor(1);
      await new Promise((r) => setTimeout(r, 100));
      const text = await h.worker!.metrics.registry.metrics();
      const sample = (name: string, label: string) =>
        new RegExp(`^${name}\\{[^}]*${label}[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1];
      expect(sample('workflow_webhook_deliveries_total', 'outcome="delivered"')).to.equal('1');
      expect(sample('workflow_webhook_attempt_duration_seconds_count', 'result="answered"')).to.equal('1');
      expect(sample('workflow_webhook_oldest_pending_seconds', 'service="worker"')).to.equal('0');
    });
  });
});
