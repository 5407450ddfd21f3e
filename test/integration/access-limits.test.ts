import { expect } from 'chai';
import supertest from 'supertest';
import { createApp } from '../../api/app.js';
import { createRedisConnection } from '../../shared/index.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const KEY = 'limits-key-4d3c2b1a';
const valid = { source: 'crm', category: 'lead', payload: { priority: 1 } };

/** The request log line of the response with this request id. */
const requestLine = (h: Harness, requestId: string) =>
  h.logs.find((l) => l.msg === 'request' && (l as { request_id?: string }).request_id === requestId) as
    (Record<string, unknown> & { client_ip?: string }) | undefined;

describe('client addresses behind proxies (TRUST_PROXY)', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  const post = (forwardedFor?: string) => {
    const req = h.http.post('/records').send(valid);
    return forwardedFor === undefined ? req : req.set('X-Forwarded-For', forwardedFor);
  };

  it('off by default: X-Forwarded-For changes neither the per-address count nor the log', async () => {
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '2' } });
    await post('203.0.113.1').expect(201);
    await post('203.0.113.2').expect(201);
    const refused = await post('203.0.113.3');
    expectContractError(refused, 429, 'RATE_LIMITED');
    expect(requestLine(h, refused.headers['x-request-id']!)).to.include({ client_ip: '127.0.0.1', status_code: 429 });
  });

  it('from a trusted proxy: each forwarded client has its own count, and the log names it', async () => {
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '2', TRUST_PROXY: '127.0.0.1' } });
    for (const client of ['203.0.113.1', '203.0.113.2']) {
      await post(client).expect(201);
      await post(`6.6.6.6, ${client}`).expect(201);
      expectContractError(await post(client), 429, 'RATE_LIMITED');
    }
    const accepted = await post('198.51.100.7').expect(201);
    expect(requestLine(h, accepted.headers['x-request-id']!)).to.include({ client_ip: '198.51.100.7' });
    // one counter per client address, none for what a client wrote left of it
    const counters = await h.deps.redis.keys(`${h.config.queuePrefix}:rate-limit:ip:*`);
    expect(counters.map((k) => k.split(':ip:')[1]).sort()).to.deep.equal([
      '198.51.100.7',
      '203.0.113.1',
      '203.0.113.2',
    ]);
  });

  it('from a peer that is not a trusted proxy: its X-Forwarded-For is not believed', async () => {
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '1', TRUST_PROXY: '10.0.0.0/8' } });
    await post('203.0.113.1').expect(201);
    const refused = await post('203.0.113.2');
    expectContractError(refused, 429, 'RATE_LIMITED');
    expect(requestLine(h, refused.headers['x-request-id']!)).to.include({ client_ip: '127.0.0.1' });
  });

  it('a hop count: the address the nearest proxy appended', async () => {
    h = await createHarness({ env: { RATE_LIMIT_PER_MINUTE: '1', TRUST_PROXY: '1' } });
    await post('6.6.6.6, 203.0.113.1').expect(201);
    await post('7.7.7.7, 203.0.113.2').expect(201);
    expectContractError(await post('8.8.8.8, 203.0.113.1'), 429, 'RATE_LIMITED');
  });
});

describe('failed key attempts (AUTH_FAILURES_PER_MINUTE)', () => {
  let h: Harness;
  let privateRedis: RedisServer | undefined;
  afterEach(async () => {
    await h.close();
    await privateRedis?.stop();
    privateRedis = undefined;
  });

  const withKey = (http: Harness['http'], key: string, forwardedFor = '203.0.113.1') =>
    http.post('/records').set('X-API-Key', key).set('X-Forwarded-For', forwardedFor).send(valid);

  it('past the limit, every key a client address presents is refused with 429 until its window ends', async () => {
    h = await createHarness({ env: { API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '3', TRUST_PROXY: '127.0.0.1' } });
    for (let i = 0; i < 3; i++) expectContractError(await withKey(h.http, `guess-${i}`), 401, 'UNAUTHORIZED');
    const wrong = await withKey(h.http, 'guess-3');
    expectContractError(wrong, 429, 'RATE_LIMITED');
    expect(Number(wrong.headers['retry-after'])).to.be.within(1, 60);
    // the right key looks the same as a wrong one now, on writes and on the queue UI alike
    expectContractError(await withKey(h.http, KEY), 429, 'RATE_LIMITED');
    expectContractError(
      await h.http.get('/admin/queues').set('X-API-Key', KEY).set('X-Forwarded-For', '203.0.113.1'),
      429,
      'RATE_LIMITED',
    );
    // another client address is not affected, and a request without a key is only told it needs one
    await withKey(h.http, KEY, '203.0.113.2').expect(201);
    expectContractError(
      await h.http.post('/records').set('X-Forwarded-For', '203.0.113.1').send(valid),
      401,
      'UNAUTHORIZED',
    );
    expect(h.logs.filter((l) => /too many wrong API keys/.test(l.msg))).to.have.length(1);
    // the count is per address, named by it, never by a key
    const [counter, ...others] = await h.deps.redis.keys(`${h.config.queuePrefix}:auth-failures:*`);
    expect(others).to.deep.equal([]);
    expect(counter).to.equal(`${h.config.queuePrefix}:auth-failures:ip:203.0.113.1`);
    // the window ends: the key works again
    await h.deps.redis.pexpire(counter!, 1);
    await new Promise((r) => setTimeout(r, 20));
    await withKey(h.http, KEY).expect(201);
  });

  it('counts for every API process through Redis', async () => {
    h = await createHarness({ env: { API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '4', TRUST_PROXY: '127.0.0.1' } });
    const otherRedis = createRedisConnection(h.config.redisUrl, 'producer', h.logger);
    try {
      const other = supertest(createApp({ ...h.deps, redis: otherRedis }).callback());
      for (const http of [h.http, other, h.http, other])
        expectContractError(await withKey(http, 'nope'), 401, 'UNAUTHORIZED');
      expectContractError(await withKey(h.http, KEY), 429, 'RATE_LIMITED');
      expectContractError(await withKey(other, KEY), 429, 'RATE_LIMITED');
    } finally {
      await otherRedis.quit();
    }
  });

  it('AUTH_FAILURES_PER_MINUTE=0 turns it off', async () => {
    h = await createHarness({ env: { API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '0' } });
    for (let i = 0; i < 30; i++) expectContractError(await withKey(h.http, 'nope'), 401, 'UNAUTHORIZED');
    await withKey(h.http, KEY).expect(201);
    expect(await h.deps.redis.keys(`${h.config.queuePrefix}:auth-failures:*`)).to.deep.equal([]);
  });

  it('fails open while Redis is down: keys are still checked, one warning is logged', async () => {
    const redis = (privateRedis = await startRedisServer());
    h = await createHarness({ env: { API_KEYS: KEY, AUTH_FAILURES_PER_MINUTE: '1', REDIS_URL: redis.url } });
    expectContractError(await withKey(h.http, 'nope'), 401, 'UNAUTHORIZED');
    expectContractError(await withKey(h.http, KEY), 429, 'RATE_LIMITED');
    await redis.stop({ hard: true });
    try {
      expectContractError(await withKey(h.http, 'nope'), 401, 'UNAUTHORIZED');
      await withKey(h.http, KEY).expect(201);
      expect(h.logs.filter((l) => /failed-key limit unavailable/.test(l.msg))).to.have.length(1);
    } finally {
      await redis.start();
    }
    for (let i = 0; i < 100 && h.deps.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    expectContractError(await withKey(h.http, 'nope'), 401, 'UNAUTHORIZED');
    expectContractError(await withKey(h.http, KEY), 429, 'RATE_LIMITED');
    expect(h.logs.some((l) => l.msg === 'failed-key limit restored')).to.equal(true);
  });
});

describe('Redis away: the contract 503, never a 500', () => {
  let h: Harness;
  let redis: RedisServer;
  afterEach(async () => {
    await h.close();
    await redis.stop();
  });

  it('the queue UI answers 503 SERVICE_UNAVAILABLE with Retry-After while its Redis is down', async () => {
    redis = await startRedisServer();
    h = await createHarness({ env: { REDIS_URL: redis.url } });
    await h.http.get('/admin/queues/api/queues').expect(200);
    await redis.stop({ hard: true });
    const res = await h.http.get('/admin/queues/api/queues');
    expectContractError(res, 503, 'SERVICE_UNAVAILABLE');
    expect(res.headers['retry-after']).to.equal('2');
    // writes are stored all the same: the reconciler queues them once Redis is back
    await h.http.post('/records?process=true').send(valid).expect(201);
    await redis.start();
    for (let i = 0; i < 100 && h.deps.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    await h.http.get('/admin/queues/api/queues').expect(200);
  });
});
