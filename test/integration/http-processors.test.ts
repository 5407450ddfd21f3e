import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { categoriesDir, type CategoriesDir } from '../helpers/categories.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { freePort } from '../helpers/redis-server.js';

const SECRET = 'whsec_dGVzdCBzZWNyZXQgZm9yIHRoZSBodHRwIHByb2Nlc3Nvcg==';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
  json: { record: { id: string; payload: Record<string, unknown> }; attempt: number };
}

/**
 * A real HTTP processor on loopback: each path answers one way, and a record's payload
 * may say for how many attempts to answer `fail_status` first.
 */
function answer(path: string, req: Received, res: http.ServerResponse): void {
  const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
  const { payload } = req.json.record;
  const failFor = Number(payload.fail_for ?? 0);
  if (req.json.attempt <= failFor) {
    json(
      Number(payload.fail_status),
      { error: `busy on attempt ${req.json.attempt}` },
      payload.retry_after ? { 'retry-after': String(payload.retry_after) } : {},
    );
    return;
  }
  switch (path) {
    case '/approve':
      return json(200, { approved: true, amount: payload.amount, attempt: req.json.attempt });
    case '/reject':
      return json(422, { error: 'amount over the approval limit', message: 'ignored' });
    case '/reject-message':
      return json(400, { message: 'currency not supported' });
    case '/reject-bare':
      return void res.writeHead(403).end();
    case '/redirect':
      return void res.writeHead(307, { location: '/approve' }).end();
    case '/status':
      return json(Number(payload.status), { error: 'try later' });
    case '/not-json':
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('approved');
    case '/array':
      return json(200, [1, 2]);
    case '/huge':
      return json(200, { blob: 'x'.repeat(300 * 1024) });
    case '/slow':
      return void setTimeout(() => json(200, { late: true }), 1500);
  }
  res.writeHead(404).end();
}

describe('HTTP processors against a real server on loopback', function () {
  this.timeout(60_000);
  let server: http.Server;
  let received: Received[];
  let files: CategoriesDir;
  let h: Harness;

  before(async () => {
    received = [];
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const entry: Received = {
          path: req.url ?? '',
          headers: req.headers,
          body,
          at: Date.now(),
          json: JSON.parse(body),
        };
        received.push(entry);
        answer(entry.path, entry, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const nobody = `http://127.0.0.1:${await freePort()}/approve`;
    files = categoriesDir();
    const http_ = (path: string, extra = '') => `{ processor: { http: { url: "${base}${path}"${extra} } } }`;
    const file = files.write(
      'categories.yaml',
      `categories:
  invoice: ${http_('/approve', ', secret_env: INVOICE_SECRET')}
  unsigned: ${http_('/approve')}
  reject: ${http_('/reject')}
  reject-message: ${http_('/reject-message')}
  reject-bare: ${http_('/reject-bare')}
  redirect: ${http_('/redirect')}
  status: ${http_('/status')}
  not-json: ${http_('/not-json')}
  array: ${http_('/array')}
  huge: ${http_('/huge')}
  slow: ${http_('/slow', ', timeout_ms: 300')}
  refused: { processor: { http: { url: "${nobody}" } } }
`,
    );
    h = await createHarness({
      worker: true,
      env: { CATEGORIES_FILE: file, INVOICE_SECRET: SECRET, MAX_ATTEMPTS: '3' },
    });
  });
  after(async () => {
    await h?.close();
    await new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
    files?.remove();
  });

  const run = async (category: string, payload: object = {}) => {
    const res = await h.http
      .post('/records?process=true')
      .set('X-Request-ID', `req-${category}`)
      .send({ source: 'test', category, payload })
      .expect(201);
    return h.waitForTerminal(res.body.id as string, 20_000);
  };
  const requestsFor = (id: string) => received.filter((r) => r.json.record.id === id);

  it('a 2xx JSON object is stored as the result; the request is signed the Standard Webhooks way', async () => {
    const record = await run('invoice', { amount: 120 });
    expect(record).to.deep.include({ status: 'processed', result: { approved: true, amount: 120, attempt: 1 } });
    const [request, ...more] = requestsFor(record.id);
    expect(more).to.have.length(0);
    expect(request!.headers['content-type']).to.equal('application/json');
    expect(request!.headers['x-request-id']).to.equal('req-invoice');
    expect(request!.headers['webhook-id']).to.equal(`${record.id}-1`);
    const timestamp = request!.headers['webhook-timestamp'] as string;
    const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
    const signature = createHmac('sha256', key).update(`${record.id}-1.${timestamp}.${request!.body}`).digest('base64');
    expect(request!.headers['webhook-signature']).to.equal(`v1,${signature}`);
    expect(request!.json).to.deep.equal({
      record: {
        id: record.id,
        source: 'test',
        category: 'invoice',
        payload: { amount: 120 },
        attempts: 0,
        created_at: record.created_at,
      },
      attempt: 1,
    });
    const unsigned = await run('unsigned');
    expect(requestsFor(unsigned.id)[0]!.headers).not.to.have.any.keys('webhook-signature', 'webhook-id');
  });

  it("a 4xx fails the record at once with the body's error, else its message, else HTTP <status>", async () => {
    const cases: Array<[string, string]> = [
      ['reject', 'amount over the approval limit'],
      ['reject-message', 'currency not supported'],
      ['reject-bare', 'HTTP 403'],
      ['redirect', 'HTTP 307: not a result (redirects are not followed)'],
    ];
    const records = await Promise.all(cases.map(([category]) => run(category)));
    records.forEach((record, i) => {
      expect(record).to.include({ status: 'failed', error: cases[i]![1], attempts: 1 });
      expect(requestsFor(record.id)).to.have.length(1);
    });
    // the redirect was not followed
    expect(requestsFor(records[3]!.id).map((r) => r.path)).to.deep.equal(['/redirect']);
  });

  it('408, 409, 425, 429, 5xx, a timeout, a refused connection, non-JSON, an array and an oversized answer are retried, then fail', async () => {
    const statuses = [408, 409, 425, 429, 500, 503];
    const byStatus = await Promise.all(statuses.map((status) => run('status', { status })));
    byStatus.forEach((record, i) => {
      expect(record).to.include({ status: 'failed', error: `HTTP ${statuses[i]}: try later`, attempts: 3 });
      expect(requestsFor(record.id).map((r) => r.json.attempt)).to.deep.equal([1, 2, 3]);
    });
    const others: Array<[string, string]> = [
      ['slow', 'processor timed out after 300 ms'],
      ['refused', 'connection failed: ECONNREFUSED'],
      ['not-json', 'HTTP 200: answer is not a JSON object'],
      ['array', 'HTTP 200: answer is not a JSON object'],
      ['huge', 'HTTP 200: answer larger than 262144 bytes'],
    ];
    const records = await Promise.all(others.map(([category]) => run(category)));
    records.forEach((record, i) => {
      expect(record, others[i]![0]).to.include({ status: 'failed', error: others[i]![1], attempts: 3 });
    });
    // the slow server's answers, arriving after the timeout, changed nothing
    await new Promise((r) => setTimeout(r, 1600));
    expect((await h.db.records.findById(records[0]!.id))!.status).to.equal('failed');
  });

  it('a transient answer followed by a 2xx: processed on the attempt that succeeded', async () => {
    const record = await run('invoice', { amount: 5, fail_for: 2, fail_status: 503 });
    expect(record).to.deep.include({ status: 'processed', attempts: 3 });
    expect(record.result).to.include({ attempt: 3 });
  });

  it('Retry-After is honoured: the next attempt waits that long', async () => {
    const record = await run('invoice', { amount: 1, fail_for: 1, fail_status: 429, retry_after: 1 });
    expect(record.status).to.equal('processed');
    const [first, second] = requestsFor(record.id);
    // RETRY_BACKOFF_MS is 10 ms here: only the answer's Retry-After explains the wait
    expect(second!.at - first!.at).to.be.at.least(950);
    const quick = await run('invoice', { amount: 1, fail_for: 1, fail_status: 429 });
    const [a, b] = requestsFor(quick.id);
    expect(b!.at - a!.at).to.be.below(900);
  });

  it('connections are reused between records', async () => {
    const before = received.length;
    const sockets = new Set<unknown>();
    const track = (socket: unknown) => sockets.add(socket);
    server.on('connection', track);
    try {
      for (let i = 0; i < 5; i++) await run('unsigned');
    } finally {
      server.off('connection', track);
    }
    expect(received.length - before).to.equal(5);
    expect(sockets.size).to.be.below(5);
  });
});
