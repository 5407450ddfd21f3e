import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { postJson, PostFailure } from '../../shared/index.js';
import { freePort } from '../helpers/redis-server.js';

/** A loopback server whose answer each test chooses. */
async function server(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  };
}

const opts = { headers: { 'x-test': '1' }, timeoutMs: 2000, maxResponseBytes: 1024 };

describe('postJson', () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  const serve = async (handler: http.RequestListener) => {
    const s = await server(handler);
    servers.push(s);
    return s.url;
  };

  it('sends the body as JSON with the headers given and reads the answer', async () => {
    let seen: { method?: string; type?: string; test?: string; body: string } = { body: '' };
    const url = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { method: req.method, type: req.headers['content-type'], test: req.headers['x-test'] as string, body };
        res.writeHead(201, { 'retry-after': '3' }).end('{"ok":true}');
      });
    });
    const answer = await postJson(url, '{"a":1}', opts);
    expect(seen).to.deep.equal({ method: 'POST', type: 'application/json', test: '1', body: '{"a":1}' });
    expect(answer.status).to.equal(201);
    expect(answer.headers.get('retry-after')).to.equal('3');
    expect(answer.body.toString()).to.equal('{"ok":true}');
    expect(answer.tooLarge).to.equal(false);
  });

  it('does not follow a redirect: the 3xx is the answer', async () => {
    let calls = 0;
    const url = await serve((req, res) => {
      calls++;
      res.writeHead(307, { location: '/elsewhere' }).end();
    });
    const answer = await postJson(url, '{}', opts);
    expect(answer.status).to.equal(307);
    expect(calls).to.equal(1);
  });

  it('reads at most maxResponseBytes and says the answer was larger', async () => {
    const url = await serve((req, res) => res.writeHead(200).end('x'.repeat(100_000)));
    const answer = await postJson(url, '{}', opts);
    expect(answer.tooLarge).to.equal(true);
    expect(answer.body.length).to.equal(1024);
  });

  it('fails with kind timeout when no answer comes in time, connection when nothing listens, aborted on abort', async () => {
    const url = await serve(() => undefined); // never answers
    const timedOut = await postJson(url, '{}', { ...opts, timeoutMs: 100 }).catch((e: unknown) => e);
    expect(timedOut).to.be.instanceOf(PostFailure);
    expect((timedOut as PostFailure).kind).to.equal('timeout');

    const refused = await postJson(`http://127.0.0.1:${await freePort()}/`, '{}', opts).catch((e: unknown) => e);
    expect((refused as PostFailure).kind).to.equal('connection');
    expect((refused as PostFailure).message).to.equal('ECONNREFUSED');

    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const aborted = await postJson(url, '{}', { ...opts, signal: controller.signal }).catch((e: unknown) => e);
    expect((aborted as PostFailure).kind).to.equal('aborted');
  });
});
