import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { UnrecoverableError } from 'bullmq';
import { signPayload, type PostAnswer, type WorkflowRecord } from '../../shared/index.js';
import {
  classifyAnswer,
  MAX_ANSWER_BYTES,
  retryAfterMs,
  RetryLaterError,
  type Processor,
  type ProcessorContext,
} from '../../worker/processors/index.js';
import { createHttpProcessor } from '../../worker/processors/http-processor.js';
import { freePort } from '../helpers/redis-server.js';

const answer = (status: number, body: string | Buffer = '', headers: Record<string, string> = {}, tooLarge = false) =>
  ({ status, headers: new Headers(headers), body: Buffer.from(body), tooLarge }) satisfies PostAnswer;

describe('HTTP processor: what an answer means', () => {
  describe('2xx with a JSON object body (≤ 256 KB): processed, result = that object', () => {
    for (const status of [200, 201, 202, 204, 299]) {
      it(`${status}`, () => {
        expect(classifyAnswer(answer(status, '{"approved":true,"n":[1]}'))).to.deep.equal({
          outcome: 'processed',
          result: { approved: true, n: [1] },
        });
      });
    }
  });

  describe('4xx other than 408, 409, 425, 429: failed at once with the body’s error, message, or HTTP <status>', () => {
    it('the body’s `error` string', () => {
      expect(classifyAnswer(answer(422, '{"error":"amount too high","message":"m"}'))).to.deep.equal({
        outcome: 'failed',
        error: 'amount too high',
      });
    });
    it('else its `message`', () => {
      expect(classifyAnswer(answer(400, '{"error":{"code":1},"message":"bad currency"}'))).to.deep.equal({
        outcome: 'failed',
        error: 'bad currency',
      });
    });
    it('else HTTP <status>', () => {
      for (const [status, body] of [
        [400, ''],
        [401, 'not json'],
        [403, '["error"]'],
        [404, '{"error":""}'],
        [410, '{"error":42}'],
        [451, 'null'],
        [499, '{}'],
      ] as const) {
        expect(classifyAnswer(answer(status, body))).to.deep.equal({ outcome: 'failed', error: `HTTP ${status}` });
      }
    });
  });

  describe('408, 409, 425, 429, 5xx: transient, with Retry-After honoured', () => {
    for (const status of [408, 409, 425, 429, 500, 502, 503, 504, 599]) {
      it(`${status}`, () => {
        expect(classifyAnswer(answer(status))).to.deep.equal({
          outcome: 'retry',
          error: `HTTP ${status}`,
          retryAfterMs: null,
        });
      });
    }
    it('names the body’s error when it gives one, and reads Retry-After', () => {
      expect(classifyAnswer(answer(503, '{"error":"overloaded"}', { 'retry-after': '7' }))).to.deep.equal({
        outcome: 'retry',
        error: 'HTTP 503: overloaded',
        retryAfterMs: 7000,
      });
    });
  });

  describe('a 2xx that is not a JSON object: transient', () => {
    for (const [what, body] of [
      ['empty', ''],
      ['text', 'ok'],
      ['an array', '[1,2]'],
      ['a string', '"done"'],
      ['null', 'null'],
      ['cut JSON', '{"a":'],
    ] as const) {
      it(what, () => {
        expect(classifyAnswer(answer(200, body))).to.deep.equal({
          outcome: 'retry',
          error: 'HTTP 200: answer is not a JSON object',
          retryAfterMs: null,
        });
      });
    }
    it('larger than 256 KB', () => {
      expect(classifyAnswer(answer(200, '{"a":"', {}, true))).to.deep.equal({
        outcome: 'retry',
        error: `HTTP 200: answer larger than ${MAX_ANSWER_BYTES} bytes`,
        retryAfterMs: null,
      });
    });
  });

  it('a 1xx or 3xx (redirects are not followed): failed at once', () => {
    expect(classifyAnswer(answer(302, '', { location: '/elsewhere' }))).to.deep.equal({
      outcome: 'failed',
      error: 'HTTP 302: not a result (redirects are not followed)',
    });
  });

  it('Retry-After: seconds or an HTTP date, at most 60 s; unreadable is none', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('0', now)).to.equal(0);
    expect(retryAfterMs(' 12 ', now)).to.equal(12_000);
    expect(retryAfterMs('3600', now)).to.equal(60_000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).to.equal(5000);
    expect(retryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now)).to.equal(0);
    expect(retryAfterMs('soon', now)).to.equal(null);
    expect(retryAfterMs('', now)).to.equal(null);
    expect(retryAfterMs(null, now)).to.equal(null);
  });
});

describe('HTTP processor: the request', () => {
  const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const record: WorkflowRecord = {
    id: '00000000-0000-4000-8000-000000000001',
    source: 'erp',
    category: 'invoice',
    payload: { amount: 3 },
    status: 'pending',
    result: { ignored: true },
    error: null,
    attempts: 1,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:01.000Z',
    processed_at: null,
  };
  const ctx = (signal = new AbortController().signal) =>
    ({
      attempt: 2,
      maxAttempts: 5,
      requestId: 'req-1',
      jobId: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      signal,
    }) as ProcessorContext;

  let server: http.Server;
  let url: string;
  let seen: { headers: http.IncomingHttpHeaders; body: string } | null;
  let reply: (res: http.ServerResponse) => void;
  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { headers: req.headers, body };
        reply(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/approve`;
  });
  after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  beforeEach(() => {
    seen = null;
    reply = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"approved":true}');
  });

  it('the signature is the Standard Webhooks one: the spec’s own vector, and the same HMAC over what was sent', async () => {
    // the signing the processor uses, against the specification's test vector
    expect(signPayload(SECRET, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).to.equal(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
    const result = await createHttpProcessor(url, SECRET, 2000)(record, ctx());
    expect(result).to.deep.equal({ approved: true });
    const { headers, body } = seen!;
    expect(JSON.parse(body)).to.deep.equal({
      record: {
        id: record.id,
        source: 'erp',
        category: 'invoice',
        payload: { amount: 3 },
        attempts: 1,
        created_at: '2026-01-01T00:00:00.000Z',
      },
      attempt: 2,
    });
    expect(headers['content-type']).to.equal('application/json');
    expect(headers['x-request-id']).to.equal('req-1');
    expect(headers['webhook-id']).to.equal('msg_p5jXN8AQM9LWM0D4loKWxJek');
    const timestamp = Number(headers['webhook-timestamp']);
    expect(Math.abs(timestamp - Date.now() / 1000)).to.be.below(5);
    // computed here from the specification's text, not with the service's code
    const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`${headers['webhook-id']}.${timestamp}.${body}`).digest('base64');
    expect(headers['webhook-signature']).to.equal(`v1,${expected}`);
  });

  it('without a secret: unsigned, no Standard Webhooks headers', async () => {
    await createHttpProcessor(url, null, 2000)(record, ctx());
    expect(seen!.headers).not.to.have.any.keys('webhook-id', 'webhook-timestamp', 'webhook-signature');
  });

  const failure = (processor: Processor) =>
    Promise.resolve()
      .then(() => processor(record, ctx()))
      .catch((e: unknown) => e);

  it('a 4xx is an UnrecoverableError; a 5xx, a timeout or a refused connection a RetryLaterError', async () => {
    reply = (res) => res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"no"}');
    const refused = await failure(createHttpProcessor(url, null, 2000));
    expect(refused).to.be.instanceOf(UnrecoverableError).with.property('message', 'no');
    reply = (res) => res.writeHead(503, { 'retry-after': '2' }).end();
    const busy = await failure(createHttpProcessor(url, null, 2000));
    expect(busy).to.be.instanceOf(RetryLaterError).and.include({ message: 'HTTP 503', retryAfterMs: 2000 });
    reply = () => undefined; // never answers
    const slow = await failure(createHttpProcessor(url, null, 150));
    expect(slow).to.be.instanceOf(RetryLaterError).with.property('message', 'no answer within 150 ms');
    const nobody = `http://127.0.0.1:${await freePort()}/x`;
    const closed = await failure(createHttpProcessor(nobody, null, 2000));
    expect(closed).to.be.instanceOf(RetryLaterError).with.property('message', 'connection failed: ECONNREFUSED');
  });
});
