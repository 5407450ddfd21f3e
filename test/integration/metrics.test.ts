import { expect } from 'chai';
import type { Processor } from '../../worker/processors/index.js';
import { startMetricsServer } from '../../worker/metrics-server.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startRedisServer } from '../helpers/redis-server.js';

const valid = { source: 'crm', category: 'lead', payload: { priority: 5 } };
const UNKNOWN_ID = '9b2f3c3e-6c1a-4d7e-9f00-000000000000';

/** The value of one sample in Prometheus text, by name and (a subset of) its labels; null when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return null;
}

describe('Prometheus metrics', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  describe('API: GET /metrics', () => {
    it('counts and times requests by route template and status, never by raw path', async () => {
      h = await createHarness();
      await h.http.get(`/records/${UNKNOWN_ID}`).expect(404);
      await h.http.get('/records/something-else').expect(404);
      await h.http.get('/no/such/route').expect(404);
      await h.http.post('/records').send(valid).expect(201);

      const res = await h.http.get('/metrics').expect(200);
      expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
      const text = res.text;
      const notFound = { method: 'GET', route: '/records/:id', status: '404' };
      expect(sample(text, 'http_requests_total', notFound)).to.equal(2);
      expect(sample(text, 'http_request_duration_seconds_count', notFound)).to.equal(2);
      expect(sample(text, 'http_request_duration_seconds_bucket', { ...notFound, le: '+Inf' })).to.equal(2);
      expect(sample(text, 'http_requests_total', { route: 'unmatched', status: '404' })).to.equal(1);
      expect(sample(text, 'http_requests_total', { method: 'POST', route: '/records', status: '201' })).to.equal(1);
      expect(text).not.to.include(UNKNOWN_ID);
      expect(text).not.to.include('something-else');
    });

    it('counts records created (not idempotent replays) and reads the queue on scrape', async () => {
      h = await createHarness();
      await h.http.post('/records?process=true').send(valid).expect(201);
      await h.http.post('/records?process=true').set('Idempotency-Key', 'once').send(valid).expect(201);
      await h.http.post('/records?process=true').set('Idempotency-Key', 'once').send(valid).expect(201);
      await h.http.post('/records').send(valid).expect(201);

      const text = (await h.http.get('/metrics').expect(200)).text;
      expect(sample(text, 'workflow_records_created_total')).to.equal(3);
      // no worker runs: both queued records wait
      expect(sample(text, 'workflow_queue_jobs', { queue: 'records', state: 'waiting' })).to.equal(2);
      expect(sample(text, 'workflow_queue_jobs', { state: 'active' })).to.equal(0);
      expect(sample(text, 'workflow_queue_jobs', { state: 'failed' })).to.equal(0);
      expect(sample(text, 'workflow_queue_jobs', { state: 'delayed' })).to.equal(0);
      // Node's process metrics, in this app's own registry
      expect(sample(text, 'process_cpu_user_seconds_total')).to.be.a('number');
      expect(sample(text, 'nodejs_heap_size_used_bytes')).to.be.a('number');
    });

    it('each app counts only its own requests (tests build several in one process)', async () => {
      h = await createHarness();
      const other = await createHarness();
      try {
        await other.http.post('/records').send(valid).expect(201);
        await other.http.post('/records').send(valid).expect(201);
        await h.http.post('/records').send(valid).expect(201);
        expect(sample((await h.http.get('/metrics')).text, 'workflow_records_created_total')).to.equal(1);
        expect(sample((await other.http.get('/metrics')).text, 'workflow_records_created_total')).to.equal(2);
      } finally {
        await other.close();
      }
    });

    it('leaves the queue series out, rather than stale, while Redis does not answer', async () => {
      const redis = await startRedisServer();
      const own = await createHarness({ env: { REDIS_URL: redis.url } });
      try {
        const before = (await own.http.get('/metrics').expect(200)).text;
        expect(sample(before, 'workflow_queue_jobs', { state: 'waiting' })).to.equal(0);
        await redis.stop();
        const text = (await own.http.get('/metrics').expect(200)).text;
        expect(sample(text, 'workflow_queue_jobs')).to.equal(null);
        expect(sample(text, 'process_cpu_user_seconds_total')).to.be.a('number');
      } finally {
        await redis.start();
        await own.close();
        await redis.stop();
      }
    });
  });

  describe('worker', () => {
    it('counts transitions by outcome, job durations, retries and attempts', async () => {
      let calls = 0;
      // fails its first attempt, then succeeds: one retry
      const flaky: Processor = () => {
        calls += 1;
        if (calls === 1) throw new Error('upstream timeout');
        return { ok: true };
      };
      h = await createHarness({ worker: true, processors: new Map([['flaky', flaky]]) });
      const ids: string[] = [];
      for (const body of [valid, valid, { ...valid, payload: { priority: 'n/a' } }, { ...valid, category: 'flaky' }]) {
        ids.push((await h.http.post('/records?process=true').send(body).expect(201)).body.id);
      }
      for (const id of ids) await h.waitForTerminal(id);
      // the 'completed' event follows the transition's commit by a moment
      let text = '';
      for (let i = 0; i < 50; i++) {
        text = await h.worker!.metrics.registry.metrics();
        if (sample(text, 'workflow_job_duration_seconds_count', { outcome: 'processed' }) === 3) break;
        await new Promise((r) => setTimeout(r, 20));
      }

      expect(sample(text, 'workflow_transitions_total', { outcome: 'processed' })).to.equal(3);
      expect(sample(text, 'workflow_transitions_total', { outcome: 'failed' })).to.equal(1);
      expect(sample(text, 'workflow_job_duration_seconds_count', { outcome: 'processed' })).to.equal(3);
      expect(sample(text, 'workflow_job_duration_seconds_count', { outcome: 'failed' })).to.equal(1);
      expect(sample(text, 'workflow_job_duration_seconds_count', { outcome: 'retried' })).to.equal(1);
      // two processed at their first attempt, the flaky one at its second
      expect(sample(text, 'workflow_job_attempts_bucket', { outcome: 'processed', le: '1' })).to.equal(2);
      expect(sample(text, 'workflow_job_attempts_bucket', { outcome: 'processed', le: '2' })).to.equal(3);
      expect(sample(text, 'workflow_job_attempts_sum', { outcome: 'processed' })).to.equal(4);
      expect(sample(text, 'workflow_queue_jobs', { state: 'waiting' })).to.equal(0);
      expect(sample(text, 'process_resident_memory_bytes')).to.be.a('number');
    });

    it('serves /metrics and /health/live on its own port, and survives a port already taken', async () => {
      h = await createHarness({ worker: true });
      const { registry } = h.worker!.metrics;
      const server = await startMetricsServer(registry, { host: '127.0.0.1', port: 0 }, h.logger);
      try {
        const base = `http://127.0.0.1:${server.port}`;
        const metrics = await fetch(`${base}/metrics`);
        expect(metrics.status).to.equal(200);
        expect(metrics.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
        expect(sample(await metrics.text(), 'workflow_transitions_total', { outcome: 'processed' })).to.equal(0);
        expect((await fetch(`${base}/health/live`)).status).to.equal(200);
        expect((await fetch(`${base}/nothing`)).status).to.equal(404);
        expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).to.equal(405);

        const second = await startMetricsServer(registry, { host: '127.0.0.1', port: server.port! }, h.logger);
        expect(second.port).to.equal(null);
        expect(h.logs.some((l) => /metrics listener could not start/.test(l.msg))).to.equal(true);
      } finally {
        await server.close();
      }
    });
  });
});
