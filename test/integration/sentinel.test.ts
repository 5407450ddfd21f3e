import { expect } from 'chai';
import { Redis } from 'ioredis';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startSentinelGroup, type SentinelGroup } from '../helpers/sentinel.js';

const valid = { source: 'crm', category: 'lead', payload: { priority: 4 } };

/**
 * REDIS_URL=redis+sentinel://… with the primary still running: an operator's manual
 * failover (SENTINEL FAILOVER) demotes it, and every connection (the API's, the worker's)
 * must leave it for the promoted replica by itself.
 */
describe('Redis Sentinel: a failover with the old primary still up', function () {
  this.timeout(60_000);
  let group: SentinelGroup;
  let h: Harness;
  before(async () => {
    group = await startSentinelGroup({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
  });
  after(async () => {
    await group?.stop();
  });
  afterEach(async () => {
    await h?.close();
  });

  async function healthPrimary(): Promise<string | null> {
    return ((await h.http.get('/health')).body as { redis: { primary: string | null } }).redis.primary;
  }

  it('follows SENTINEL FAILOVER: writes, processing and /health move to the new primary', async () => {
    h = await createHarness({ env: { REDIS_URL: group.url, RECONCILE_INTERVAL_MS: '300' }, worker: true });
    const before = await h.http.post('/records?process=true').send(valid).expect(201);
    expect(await h.waitForTerminal(before.body.id)).to.include({ status: 'processed' });
    const old = await group.primary();
    expect(await healthPrimary()).to.equal(`127.0.0.1:${old.port}`);

    const sentinel = new Redis({ port: group.sentinels[0]!.port, host: '127.0.0.1' });
    try {
      expect(await sentinel.call('SENTINEL', 'FAILOVER', group.name)).to.equal('OK');
    } finally {
      sentinel.disconnect();
    }
    const promoted = await group.waitForNewPrimary(old, 30_000);
    const deadline = Date.now() + 15_000;
    while ((await healthPrimary()) !== `127.0.0.1:${promoted.port}`) {
      if (Date.now() > deadline) throw new Error(`/health still names ${await healthPrimary()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // the old primary is a replica now, answering writes with READONLY: nothing may go there
    await group.waitForReplica(old, 30_000);
    const after = await Promise.all(
      Array.from({ length: 20 }, () => h.http.post('/records?process=true').send(valid).expect(201)),
    );
    for (const res of after) expect(await h.waitForTerminal(res.body.id, 15_000)).to.include({ status: 'processed' });
    const workerLog = h.logs.filter((l) => l.msg === 'redis primary in use').map((l) => l.primary);
    expect(workerLog).to.include(`127.0.0.1:${promoted.port}`);
    const health = await h.http.get('/health').expect(200);
    expect(health.body.redis).to.deep.equal({
      mode: 'sentinel',
      master_name: group.name,
      primary: `127.0.0.1:${promoted.port}`,
    });
  });
});
