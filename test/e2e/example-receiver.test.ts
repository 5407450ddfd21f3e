import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { generateSecret, webhookHeaders } from '../../shared/index.js';
import { childBaseEnv } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** examples/webhook-receiver.mjs as a newcomer runs it: signatures checked, each webhook-id handled once. */
describe('e2e: the example webhook receiver', function () {
  this.timeout(30_000);
  let child: ChildProcess | undefined;
  let output = '';
  afterEach(() => child?.kill('SIGTERM'));

  it('accepts a signed delivery once, acknowledges its repeat, refuses a bad or stale signature', async () => {
    const secret = generateSecret();
    const port = await freePort();
    child = spawn(process.execPath, [path.join(root, 'examples/webhook-receiver.mjs')], {
      env: { ...childBaseEnv(), WEBHOOK_SECRET: secret, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    for (const deadline = Date.now() + 10_000; !output.includes('listening');) {
      if (Date.now() > deadline) throw new Error(`receiver did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const body = JSON.stringify({
      type: 'record.processed',
      timestamp: new Date().toISOString(),
      data: { record: { id: 'r1', status: 'processed' } },
    });
    const send = (headers: Record<string, string>, text = body) =>
      fetch(`http://127.0.0.1:${port}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: text,
      });
    const signed = webhookHeaders(secret, 'delivery-1', body);
    expect((await send(signed)).status).to.equal(204);
    const again = await send(signed);
    expect(again.status).to.equal(200);
    expect(await again.text()).to.equal('duplicate');
    expect((await send(signed, body.replace('processed', 'failed'))).status).to.equal(401);
    expect((await send(webhookHeaders(generateSecret(), 'delivery-2', body))).status).to.equal(401);
    expect((await send(webhookHeaders(secret, 'delivery-3', body, Date.now() - 10 * 60_000))).status).to.equal(401);
    // a rotation's two signatures: one valid is enough
    expect((await send(webhookHeaders([generateSecret(), secret], 'delivery-4', body))).status).to.equal(204);
    const handled = output.split('\n').filter((l) => l.includes('"type"'));
    expect(handled.map((l) => (JSON.parse(l) as { id: string }).id)).to.deep.equal(['delivery-1', 'delivery-4']);
  });
});
