import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { categoriesDir, type CategoriesDir } from '../helpers/categories.js';
import { childBaseEnv, startProcess, type ServiceProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';
import { startStack, type Stack } from '../helpers/stack.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'whsec_ZXhhbXBsZSBzZWNyZXQgZm9yIHRoZSBlMmUgdGVzdA==';

/** The example HTTP processor (examples/http-processor.js) as its own process; resolves once it listens. */
async function startExampleServer(port: number): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [path.join(root, 'examples/http-processor.js')], {
    env: { ...childBaseEnv(), PORT: String(port), INVOICE_PROCESSOR_SECRET: SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`example server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { child, output: () => out };
}

/** What one worker's /metrics says it ran, summed over categories, kinds and outcomes. */
async function processorRuns(worker: ServiceProcess): Promise<number> {
  const line = worker
    .output()
    .split('\n')
    .find((l) => l.includes('"worker started"'));
  const port = (JSON.parse(line!) as { metrics_port: number }).metrics_port;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('workflow_processor_runs_total{'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/**
 * The built API and two workers started with the same categories file: the example one
 * (examples/categories.yaml), its HTTP processor's URL pointed at the example server.
 */
describe('e2e: the API and two workers with one categories file', function () {
  this.timeout(120_000);
  let files: CategoriesDir;
  let example: { child: ChildProcess; output: () => string } | undefined;
  let stack: Stack | undefined;
  let file: string;

  before(async () => {
    const port = await freePort();
    example = await startExampleServer(port);
    files = categoriesDir();
    const text = fs
      .readFileSync(path.join(root, 'examples/categories.yaml'), 'utf8')
      .replace('http://127.0.0.1:4010/invoices', `http://127.0.0.1:${port}/invoices`)
      .replace('./processors/lead.js', path.join(root, 'examples/processors/lead.js'));
    file = files.write('categories.yaml', text);
    stack = await startStack({
      workers: 2,
      env: { CATEGORIES_FILE: file, INVOICE_PROCESSOR_SECRET: SECRET, WORKER_CONCURRENCY: '2' },
    });
  });
  after(async () => {
    await stack?.stop();
    example?.child.kill('SIGTERM');
    files?.remove();
  });

  const post = async (pathname: string, body: object) => {
    const res = await fetch(`${stack!.base}${pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
  };
  const terminal = async (id: string) => {
    for (let i = 0; i < 400; i++) {
      const record = (await (await fetch(`${stack!.base}/records/${id}`)).json()) as Record<string, unknown>;
      if (record.status !== 'pending') return record;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`record ${id} still pending`);
  };

  it('checks payloads at the API, and both workers run builtin, module and HTTP processors', async () => {
    const refused = await post('/records', { source: 'erp', category: 'invoice', payload: { amount: -1 } });
    expect(refused.status).to.equal(422);
    expect(refused.body.error!.code).to.equal('VALIDATION_ERROR');

    const cases: Array<[string, object, string, Record<string, unknown>]> = [
      ['invoice', { amount: 250, currency: 'EUR', supplier: 'Acme' }, 'processed', { approved: true, amount: 250 }],
      ['invoice', { amount: 90, currency: 'EUR', supplier: 'flaky-supplier' }, 'processed', { approved: true }],
      ['invoice', { amount: 50_000, currency: 'USD', supplier: 'Acme' }, 'failed', {}],
      ['invoice', { amount: 10, currency: 'CHF', supplier: 'Acme' }, 'failed', {}],
      ['lead', { email: 'cto@bigcorp.example', company_size: 5000 }, 'processed', { domain: 'bigcorp.example' }],
      ['lead', { email: 'someone@gmail.com' }, 'failed', {}],
      ['ticket', { priority: 5 }, 'processed', { classification: 'high', score: 5 }],
      ['unlisted', { priority: 'urgent' }, 'failed', {}],
    ];
    // many of each, so both workers get some of every kind
    const submitted = await Promise.all(
      Array.from({ length: 5 }).flatMap(() =>
        cases.map(async ([category, payload]) => {
          const res = await post('/records?process=true', { source: 'e2e', category, payload });
          expect(res.status, JSON.stringify(res.body)).to.equal(201);
          return res.body.id as string;
        }),
      ),
    );
    const records = await Promise.all(submitted.map(terminal));
    records.forEach((record, i) => {
      const [category, , status, result] = cases[i % cases.length]!;
      expect(record.status, `${category} ${JSON.stringify(record)}`).to.equal(status);
      if (status === 'processed') expect(record.result).to.deep.include(result);
    });
    const errors = new Set(records.filter((r) => r.status === 'failed').map((r) => r.error));
    expect([...errors].sort()).to.deep.equal([
      'amount 50000 is over the approval limit of 10000',
      'currency CHF is not supported',
      'gmail.com is a free mail domain: not a company lead',
      'invalid priority',
    ]);
    // the flaky supplier's first answer was a 503: those records took two attempts
    const flaky = records.filter((_, i) => i % cases.length === 1);
    expect(flaky.every((r) => r.attempts === 2)).to.equal(true);

    const [a, b] = await Promise.all(stack!.workers.map(processorRuns));
    expect(a! + b!).to.equal(records.length + flaky.length);
    expect(a, 'first worker ran processors').to.be.above(0);
    expect(b, 'second worker ran processors').to.be.above(0);
    expect(example!.output()).to.include('POST /invoices 200');
    expect(example!.output()).not.to.include(' 401 ');

    const categories = (await (await fetch(`${stack!.base}/categories`)).json()) as {
      items: Array<{ category: string; processor: string }>;
    };
    expect(categories.items.map((c) => [c.category, c.processor])).to.deep.equal([
      ['invoice', 'http'],
      ['lead', 'module'],
      ['ticket', 'builtin'],
    ]);
  });

  it('a worker whose module processor cannot be imported exits non-zero, naming the file and the category', async () => {
    const broken = files.write('broken.mjs', 'export const notDefault = 1;\n');
    const bad = files.write('bad.yaml', `categories:\n  lead: { processor: { module: ${broken} } }\n`);
    const worker = startProcess('worker', { ...stack!.env, CATEGORIES_FILE: bad, METRICS_PORT: '0' });
    const code = await worker.closed;
    expect(code).to.equal(1);
    expect(worker.stderr()).to.include(`${bad}: category "lead": processor module ${broken} must export a function`);
  });
});
