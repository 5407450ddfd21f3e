import { expect } from 'chai';
import fc from 'fast-check';
import { IDEMPOTENCY_TTL_MS } from '../../shared/index.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const body = (n = 1) => ({ source: 'crm', category: 'lead', payload: { priority: n } });

async function count(h: Harness, table: string): Promise<number> {
  const [{ n }] = (await h.db.knex(table).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(n);
}

/** Moves every stored key past its 24 hours, as if a day had gone by. */
const ageKeys = (h: Harness) =>
  h.db.knex('idempotency_responses').update({ created_at: Date.now() - IDEMPOTENCY_TTL_MS - 1000 });

describe('Idempotency-Key', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  describe('without API keys', () => {
    beforeEach(async () => {
      h = await createHarness();
    });

    it('the same JSON value in another key order or spacing replays; another array order does not', async () => {
      const first = await h.http
        .post('/records')
        .set('Idempotency-Key', 'order-1')
        .set('content-type', 'application/json')
        .send('{"source":"crm","category":"lead","payload":{"a":1,"b":[1,2],"c":{"x":1,"y":2}}}')
        .expect(201);
      const reordered = await h.http
        .post('/records')
        .set('Idempotency-Key', 'order-1')
        .set('content-type', 'application/json')
        .send('{ "payload": { "c": {"y": 2, "x": 1}, "b": [1, 2], "a": 1 },\n  "category": "lead", "source": "crm" }')
        .expect(201);
      expect(reordered.headers['idempotent-replayed']).to.equal('true');
      expect(reordered.body.id).to.equal(first.body.id);

      const otherOrder = await h.http
        .post('/records')
        .set('Idempotency-Key', 'order-1')
        .send({ source: 'crm', category: 'lead', payload: { a: 1, b: [2, 1], c: { x: 1, y: 2 } } });
      expectContractError(otherOrder, 422, 'IDEMPOTENCY_KEY_REUSED');
      expect(await count(h, 'records')).to.equal(1);
    });

    it('a key reused after 24 hours is a new request: 201 with a new record, never an error', async () => {
      const first = await h.http.post('/records').set('Idempotency-Key', 'daily').send(body(1)).expect(201);
      await ageKeys(h);
      // the same body and another one: both are new requests once the key has expired
      const same = await h.http.post('/records').set('Idempotency-Key', 'daily').send(body(1));
      expect(same.status, JSON.stringify(same.body)).to.equal(201);
      expect(same.headers['idempotent-replayed']).to.equal(undefined);
      expect(same.body.id).to.not.equal(first.body.id);
      await ageKeys(h);
      const other = await h.http.post('/records').set('Idempotency-Key', 'daily').send(body(2));
      expect(other.status, JSON.stringify(other.body)).to.equal(201);
      // and it is remembered again from now on
      const repeat = await h.http.post('/records').set('Idempotency-Key', 'daily').send(body(2)).expect(201);
      expect(repeat.headers['idempotent-replayed']).to.equal('true');
      expect(repeat.body.id).to.equal(other.body.id);
      expect(await count(h, 'records')).to.equal(3);
      expect(await count(h, 'idempotency_responses')).to.equal(1);
    });

    it('twenty concurrent requests with an expired key make one new record', async () => {
      await h.http.post('/records').set('Idempotency-Key', 'stale').send(body()).expect(201);
      await ageKeys(h);
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => h.http.post('/records').set('Idempotency-Key', 'stale').send(body())),
      );
      expect(responses.map((r) => r.status)).to.deep.equal(Array(20).fill(201));
      expect(new Set(responses.map((r) => r.body.id as string)).size).to.equal(1);
      expect(await count(h, 'records')).to.equal(2);
    });

    it('a key must be 1-255 printable ASCII characters; anything else is 422 VALIDATION_ERROR', async () => {
      for (const key of ['x'.repeat(256), 'tab\there', 'caf\u00e9']) {
        const res = await h.http.post('/records').set('Idempotency-Key', key).send(body());
        expectContractError(res, 422, 'VALIDATION_ERROR');
        expect(res.body.error.details[0].field).to.equal('header.Idempotency-Key');
      }
      for (const key of ['x'.repeat(255), 'a b ~!@#$%^&*()', '7']) {
        await h.http.post('/records').set('Idempotency-Key', key).send(body()).expect(201);
      }
      expect(await count(h, 'records')).to.equal(3);
    });

    it('works the same on POST /records/batch, apart from POST /records with the same key', async () => {
      const batch = { records: [body(1), body(2)] };
      const first = await h.http.post('/records/batch').set('Idempotency-Key', 'b-1').send(batch).expect(201);
      const again = await h.http
        .post('/records/batch')
        .set('Idempotency-Key', 'b-1')
        .send({ records: [{ payload: { priority: 1 }, category: 'lead', source: 'crm' }, body(2)] })
        .expect(201);
      expect(again.headers['idempotent-replayed']).to.equal('true');
      expect(again.body).to.deep.equal(first.body);
      const reordered = await h.http
        .post('/records/batch')
        .set('Idempotency-Key', 'b-1')
        .send({ records: [body(2), body(1)] });
      expectContractError(reordered, 422, 'IDEMPOTENCY_KEY_REUSED');
      // one record sent to the other endpoint under the same key is another request
      const single = await h.http.post('/records').set('Idempotency-Key', 'b-1').send(body(1));
      expectContractError(single, 422, 'IDEMPOTENCY_KEY_REUSED');
      const bad = await h.http.post('/records/batch').set('Idempotency-Key', '').send(batch);
      expectContractError(bad, 422, 'VALIDATION_ERROR');
      expect(await count(h, 'records')).to.equal(2);
    });

    it('expired keys are pruned', async () => {
      await h.http.post('/records').set('Idempotency-Key', 'old').send(body()).expect(201);
      await ageKeys(h);
      await h.http.post('/records').set('Idempotency-Key', 'new').send(body()).expect(201);
      expect(await h.db.idempotency.prune()).to.equal(1);
      const keys = (await h.db.knex('idempotency_responses').select('key')) as Array<{ key: string }>;
      expect(keys.map((k) => k.key)).to.deep.equal(['new']);
    });
  });

  describe('with API keys', () => {
    beforeEach(async () => {
      h = await createHarness({ env: { API_KEYS: 'key-a,key-b' } });
    });

    it('is scoped to the API key that sent it: two clients with the same key string get their own records', async () => {
      const a = await h.http.post('/records').set('X-API-Key', 'key-a').set('Idempotency-Key', 'k').send(body(1));
      const b = await h.http.post('/records').set('X-API-Key', 'key-b').set('Idempotency-Key', 'k').send(body(2));
      expect([a.status, b.status]).to.deep.equal([201, 201]);
      expect(b.headers['idempotent-replayed']).to.equal(undefined);
      expect(b.body.id).to.not.equal(a.body.id);
      expect(b.body.payload).to.deep.equal({ priority: 2 });
      // each client's repeat replays its own first response, whichever header carried the key
      const aAgain = await h.http
        .post('/records')
        .set('Authorization', 'Bearer key-a')
        .set('Idempotency-Key', 'k')
        .send(body(1))
        .expect(201);
      expect(aAgain.headers['idempotent-replayed']).to.equal('true');
      expect(aAgain.body.id).to.equal(a.body.id);
      expect(await count(h, 'records')).to.equal(2);
    });
  });

  describe('property: random bodies, key orders, spacing and concurrent repeats', () => {
    beforeEach(async () => {
      h = await createHarness({ env: { API_KEYS: 'client-1,client-2' } });
    });

    /** JSON text of the value with its object keys shuffled by `seed` and random spacing. */
    function spelled(value: unknown, seed: number): string {
      let s = seed;
      const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) % 1000) / 1000;
      const space = () => [' ', '', '\n', '  '][Math.floor(rand() * 4)]!;
      const write = (v: unknown): string => {
        if (Array.isArray(v)) return `[${space()}${v.map(write).join(`,${space()}`)}${space()}]`;
        if (v === null || typeof v !== 'object') return JSON.stringify(v);
        const keys = Object.keys(v).sort(() => rand() - 0.5);
        const entries = keys.map((k) => `${JSON.stringify(k)}${space()}:${space()}${write((v as never)[k])}`);
        return `{${space()}${entries.join(`,${space()}`)}${space()}}`;
      };
      return write(value);
    }

    it('one record per (client, key, body), never a 5xx', async function () {
      this.timeout(120_000);
      const payload = fc.dictionary(
        fc.string({ minLength: 1, maxLength: 6 }).filter((k) => k !== '__proto__'),
        fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.array(fc.integer(), { maxLength: 3 }), fc.boolean()),
        { maxKeys: 6 },
      );
      let round = 0;
      await fc.assert(
        fc.asyncProperty(
          payload,
          fc.constantFrom('client-1', 'client-2'),
          fc.integer({ min: 2, max: 8 }),
          fc.integer(),
          async (p, client, repeats, seed) => {
            const key = `prop-${round++}`;
            const value = { source: 'prop', category: 'c', payload: p };
            const responses = await Promise.all(
              Array.from({ length: repeats }, (_, i) =>
                h.http
                  .post('/records')
                  .set('X-API-Key', client)
                  .set('Idempotency-Key', key)
                  .set('content-type', 'application/json')
                  .send(spelled(value, seed + i)),
              ),
            );
            for (const r of responses) expect(r.status, JSON.stringify(r.body)).to.equal(201);
            expect(new Set(responses.map((r) => r.body.id as string)).size).to.equal(1);
            // the same key from the other client is its own request
            const other = client === 'client-1' ? 'client-2' : 'client-1';
            const theirs = await h.http
              .post('/records')
              .set('X-API-Key', other)
              .set('Idempotency-Key', key)
              .send({ ...value, payload: { other: true } });
            expect(theirs.status).to.equal(201);
            expect(theirs.body.id).to.not.equal(responses[0]!.body.id);
          },
        ),
        { numRuns: 40 },
      );
      expect(await count(h, 'records')).to.equal(80);
    });
  });
});
