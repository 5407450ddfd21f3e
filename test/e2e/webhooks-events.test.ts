import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startProcess, type ServiceProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';
import { sampleBodies, startStack, type Stack } from '../helpers/stack.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

/** Webhooks and the event stream across real processes, with the faults the outbox is meant to survive. */
describe('e2e: webhooks and events', function () {
  this.timeout(240_000);
  let stack: Stack | undefined;
  let receiver: WebhookReceiver | undefined;
  let second: ServiceProcess | undefined;
  afterEach(async () => {
    await second?.stop();
    await stack?.stop();
    await receiver?.close();
    stack = undefined;
    receiver = undefined;
    second = undefined;
  });

  const report = (line: string) => console.log(`      ${line}`);

  async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('2,000 records while a worker is SIGKILLed and Redis restarts empty: every terminal event delivered, one id per record', async () => {
    receiver = await startWebhookReceiver();
    stack = await startStack({
      workers: 2,
      env: { WORKER_CONCURRENCY: '32', WEBHOOK_ALLOW_PRIVATE_URLS: 'true', WEBHOOK_BACKOFF_MS: '200' },
    });
    const s = stack;
    const sub = await fetch(`${s.base}/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: receiver.url, events: ['record.processed', 'record.failed'] }),
    });
    expect(sub.status).to.equal(201);
    const submitted = s.submit(sampleBodies(2000));
    await waitFor(async () => receiver!.received.length >= 300, 60_000, '300 deliveries');
    s.workers[0]!.child.kill('SIGKILL');
    await waitFor(async () => receiver!.received.length >= 600, 60_000, '600 deliveries');
    const admin = new Redis(s.redis.url, { maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
    await admin.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
    admin.disconnect();
    await new Promise((r) => setTimeout(r, 500));
    await s.redis.start();
    expect((await submitted).filter((r) => r.status !== 201)).to.deep.equal([]);

    await s.waitUntilNoPending(2000, 120_000);
    const delivered = async () => {
      const [{ n }] = (await s.knex('webhook_deliveries').where({ status: 'delivered' }).count({ n: '*' })) as Array<{
        n: number | string;
      }>;
      return Number(n);
    };
    await waitFor(async () => (await delivered()) === 2000, 120_000, 'every delivery delivered');

    const idsByRecord = new Map<string, Set<string>>();
    const timesById = new Map<string, number>();
    for (const d of receiver.received) {
      const id = d.headers['webhook-id']!;
      timesById.set(id, (timesById.get(id) ?? 0) + 1);
      const record = d.json.data.record.id;
      idsByRecord.set(record, (idsByRecord.get(record) ?? new Set()).add(id));
    }
    const twoIds = [...idsByRecord.values()].filter((ids) => ids.size > 1).length;
    const repeats = [...timesById.values()].filter((n) => n > 1).length;
    const [{ n: rows }] = (await s.knex('webhook_deliveries').count({ n: '*' })) as Array<{ n: number | string }>;
    report(
      `records 2000, requests received ${receiver.received.length}, unique webhook-ids ${timesById.size}, ` +
        `ids received more than once ${repeats}, records with two ids ${twoIds}, delivery rows ${rows}`,
    );
    expect(timesById.size).to.equal(2000);
    expect(idsByRecord.size).to.equal(2000);
    expect(twoIds).to.equal(0);
    expect(Number(rows)).to.equal(2000);
    expect(await s.duplicates()).to.equal(0);
  });

  it('two API processes both stream every event, in the same order', async () => {
    stack = await startStack({ workers: 1 });
    const s = stack;
    const port = await freePort();
    second = startProcess('api', { ...s.env, PORT: String(port), MIGRATE_ON_START: 'false' });
    await second.waitForOutput('api listening');
    const streams = await Promise.all([openSse(`${s.base}/events`), openSse(`http://127.0.0.1:${port}/events`)]);
    // records go to both APIs, and the worker writes their transitions: three writers in all
    const half = sampleBodies(150);
    await Promise.all([
      s.submit(half),
      (async () => {
        for (const body of sampleBodies(150, 150)) {
          const res = await fetch(`http://127.0.0.1:${port}/records?process=true`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          expect(res.status).to.equal(201);
        }
      })(),
    ]);
    await s.waitUntilNoPending(300, 60_000);
    const [a, b] = await Promise.all(streams.map((st) => st.waitFor(600, 30_000)));
    const stored = ((await s.knex('record_events').select('id').orderBy('id')) as Array<{ id: number }>).map((r) =>
      Number(r.id),
    );
    for (const st of streams) st.close();
    report(`events stored ${stored.length}, streamed by the first API ${a!.length}, by the second ${b!.length}`);
    expect(stored).to.have.length(600);
    expect(a!.map((e) => e.id)).to.deep.equal(stored);
    expect(b!.map((e) => e.id)).to.deep.equal(stored);
  });

  it('SIGTERM to an API with open streams: they end and it exits 0 at once', async () => {
    stack = await startStack({ workers: 0 });
    const s = stack;
    const streams = await Promise.all([openSse(`${s.base}/events`), openSse(`${s.base}/events`)]);
    const signalled = Date.now();
    const code = await s.api.stop('SIGTERM');
    await Promise.all(streams.map((st) => st.ended));
    report(`exited ${Date.now() - signalled} ms after SIGTERM with 2 open streams`);
    expect(code).to.equal(0);
    expect(Date.now() - signalled).to.be.lessThan(3000);
  });
});
