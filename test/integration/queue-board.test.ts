import { expect } from 'chai';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';

const KEY = 'board-key-0123456789';
const valid = { source: 'crm', category: 'lead', payload: { priority: 5 } };

interface BoardQueue {
  name: string;
  readOnlyMode: boolean;
  counts: Record<string, number>;
}

describe('queue UI (Bull Board) at /admin/queues', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  describe('with API_KEYS set', () => {
    it('needs a key for the page, its assets and its API', async () => {
      h = await createHarness({ env: { API_KEYS: KEY } });
      for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/favicon-32x32.png']) {
        const res = await h.http.get(path);
        expectContractError(res, 401, 'UNAUTHORIZED');
        expect(res.headers['www-authenticate']).to.match(/^Bearer realm=/);
        expectContractError(await h.http.get(path).set('X-API-Key', 'wrong'), 401, 'UNAUTHORIZED');
      }
    });

    it('with a key: the page, its own assets (no CDN) and the queue with its jobs', async () => {
      h = await createHarness({ env: { API_KEYS: KEY } });
      await h.http.post('/records?process=true').set('X-API-Key', KEY).send(valid).expect(201);

      const page = await h.http.get('/admin/queues').set('Authorization', `Bearer ${KEY}`).expect(200);
      expect(page.headers['content-type']).to.match(/^text\/html/);
      expect(page.text).not.to.match(/(src|href)="(https?:)?\/\//);
      const base = /<base href="([^"]+)"/.exec(page.text)?.[1];
      expect(base).to.equal('/admin/queues/');
      const assets = [...page.text.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(assets.filter((a) => a.endsWith('.js'))).to.have.length.greaterThan(0);
      for (const asset of assets) {
        const url = new URL(asset, `http://api${base}`).pathname;
        await h.http.get(url).set('X-API-Key', KEY).expect(200);
      }

      const api = await h.http.get('/admin/queues/api/queues').set('X-API-Key', KEY).expect(200);
      const queues = api.body.queues as BoardQueue[];
      expect(queues.map((q) => q.name)).to.deep.equal(['records']);
      expect(queues[0]!.counts.waiting).to.equal(1);
    });

    it('is read-only by default: the board says so and every change is 405, changing nothing', async () => {
      h = await createHarness({ env: { API_KEYS: KEY } });
      const api = await h.http.get('/admin/queues/api/queues').set('X-API-Key', KEY).expect(200);
      expect((api.body.queues as BoardQueue[])[0]!.readOnlyMode).to.equal(true);

      for (const [method, path] of [
        ['put', '/admin/queues/api/queues/records/pause'],
        ['put', '/admin/queues/api/queues/pause'],
        ['put', '/admin/queues/api/queues/records/retry/failed'],
        ['delete', '/admin/queues/api/queues/records/clean/completed'],
        ['post', '/admin/queues/api/queues/records/add'],
      ] as const) {
        const res = await h.http[method](path).set('X-API-Key', KEY).send({});
        expectContractError(res, 405, 'METHOD_NOT_ALLOWED');
        expect(res.headers.allow).to.equal('GET, HEAD');
      }
      expect(await h.queue.isPaused()).to.equal(false);
    });

    it('with ADMIN_WRITE=true the board may change the queue', async () => {
      h = await createHarness({ env: { API_KEYS: KEY, ADMIN_WRITE: 'true' } });
      const api = await h.http.get('/admin/queues/api/queues').set('X-API-Key', KEY).expect(200);
      expect((api.body.queues as BoardQueue[])[0]!.readOnlyMode).to.equal(false);
      // still behind the key
      expectContractError(await h.http.put('/admin/queues/api/queues/records/pause'), 401, 'UNAUTHORIZED');
      await h.http.put('/admin/queues/api/queues/records/pause').set('X-API-Key', KEY).expect(200);
      expect(await h.queue.isPaused()).to.equal(true);
    });
  });

  it('without API_KEYS the page is open, as every read is (a warning at start says so)', async () => {
    h = await createHarness();
    await h.http.get('/admin/queues').expect(200);
    expect(h.logs.some((l) => /API_KEYS is not set/.test(l.msg))).to.equal(true);
  });
});
