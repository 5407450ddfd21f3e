import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { freePort } from '../helpers/redis-server.js';
import { startProcess, type ServiceProcess } from '../helpers/processes.js';
import { startStack, type Stack } from '../helpers/stack.js';

const KEY_RATE = 'several-apis-rate';
const KEY_IDEMPOTENCY = 'several-apis-idempotency';
const KEY_WAIT = 'several-apis-wait';
const RATE_LIMIT = 30;
const valid = { source: 'lb', category: 'c', payload: { priority: 2 } };

/**
 * Two API processes against one Redis and one database, as behind a load balancer: a
 * client may reach either for any call, and sees one service.
 */
describe('e2e: two API processes behind one load balancer', function () {
  this.timeout(120_000);
  let stack: Stack;
  let second: ServiceProcess;
  let bases: [string, string];

  before(async () => {
    stack = await startStack({
      workers: 0,
      env: {
        API_KEYS: [KEY_RATE, KEY_IDEMPOTENCY, KEY_WAIT].join(','),
        RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
        AUTH_FAILURES_PER_MINUTE: '4',
      },
    });
    const port = await freePort();
    // the first API migrated the database; the second starts as a replica of the deployment would
    second = startProcess('api', { ...stack.env, PORT: String(port), MIGRATE_ON_START: 'false' });
    await second.waitForOutput('api listening');
    bases = [stack.base, `http://127.0.0.1:${port}`];
  });
  after(async () => {
    await second?.stop();
    await stack?.stop();
  });

  const post = (base: string, path: string, key: string, body?: object, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key, ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('Prefer: wait on one API is answered when a worker finishes a record created through the other', async () => {
    const created = (await (await post(bases[0], '/records', KEY_WAIT, valid)).json()) as { id: string };
    // no worker runs yet: the wait can only end when one starts and does the job
    const waiting = post(bases[1], `/records/${created.id}/process`, KEY_WAIT, undefined, { prefer: 'wait=20' });
    const askedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    await stack.startWorker();
    const res = await waiting;
    const body = (await res.json()) as { id: string; status: string };
    expect(res.status).to.equal(200);
    expect(res.headers.get('preference-applied')).to.equal('wait=20');
    expect(body).to.include({ id: created.id, status: 'processed' });
    expect(Date.now() - askedAt).to.be.greaterThan(1000);
  });

  it('idempotency: the same key sent to both APIs at once stores one record, and both answers name it', async () => {
    const keys = Array.from({ length: 10 }, () => `lb-${randomUUID()}`);
    const answers = await Promise.all(
      keys.flatMap((key) =>
        bases.map(async (base) => {
          const res = await post(
            base,
            '/records',
            KEY_IDEMPOTENCY,
            { ...valid, source: key },
            { 'idempotency-key': key },
          );
          return {
            key,
            status: res.status,
            replayed: res.headers.get('idempotent-replayed') === 'true',
            id: ((await res.json()) as { id: string }).id,
          };
        }),
      ),
    );
    for (const key of keys) {
      const pair = answers.filter((a) => a.key === key);
      expect(pair.map((a) => a.status)).to.deep.equal([201, 201]);
      expect(pair[0]!.id).to.equal(pair[1]!.id);
      expect(pair.filter((a) => a.replayed)).to.have.length(1);
    }
    const rows = await stack.knex('records').whereIn('source', keys).count({ n: '*' });
    expect(Number((rows[0] as { n: number | string }).n)).to.equal(keys.length);
  });

  it('the rate limit is one count for both: writes spread over the two APIs are refused past it on either', async () => {
    for (let i = 0; i < RATE_LIMIT; i++) {
      expect((await post(bases[i % 2]!, '/records', KEY_RATE, valid)).status).to.equal(201);
    }
    for (const base of bases) {
      const res = await post(base, '/records', KEY_RATE, valid);
      expect(res.status).to.equal(429);
      expect(Number(res.headers.get('retry-after'))).to.be.within(1, 60);
    }
  });

  it('wrong keys are counted for both: past the limit the right key is refused on either', async () => {
    for (let i = 0; i < 4; i++)
      expect((await post(bases[i % 2]!, '/records', `guess-${i}`, valid)).status).to.equal(401);
    for (const base of bases) expect((await post(base, '/records', KEY_WAIT, valid)).status).to.equal(429);
  });
});
