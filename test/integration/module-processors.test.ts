import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { loadCategories } from '../../shared/index.js';
import { createProcessors } from '../../worker/processors/index.js';
import { categoriesDir, type CategoriesDir } from '../helpers/categories.js';
import { createHarness, type Harness } from '../helpers/harness.js';

/** What the processor modules below tell the test, through the one process they share with it. */
interface Probe {
  imports: number;
  calls: Array<{ attempt: number; maxAttempts: number; requestId: string | null }>;
  started: boolean;
  abortReason: string | null;
  lateFinished: boolean;
}
const probe = () => (globalThis as unknown as { moduleProbe: Probe }).moduleProbe;

// the modules live in a temporary directory, so they import this project's BullMQ by its path
const BULLMQ = pathToFileURL(createRequire(import.meta.url).resolve('bullmq')).href;

const MODULES: Record<string, string> = {
  'result.mjs': `
globalThis.moduleProbe.imports += 1;
export default async function (record, ctx) {
  globalThis.moduleProbe.calls.push({ attempt: ctx.attempt, maxAttempts: ctx.maxAttempts, requestId: ctx.requestId });
  ctx.log.info({ n: record.payload.n }, 'doubling');
  return { doubled: record.payload.n * 2, aborted: ctx.signal.aborted };
}`,
  'permanent.mjs': `
export default () => { throw Object.assign(new Error('amount is over the limit'), { permanent: true }); };`,
  'unrecoverable.mjs': `
import { UnrecoverableError } from '${BULLMQ}';
export default () => { throw new UnrecoverableError('supplier unknown'); };`,
  'transient.mjs': `
export default (record, ctx) => {
  if (ctx.attempt < record.payload.succeed_at) throw new Error('upstream busy on attempt ' + ctx.attempt);
  return { attempt: ctx.attempt };
};`,
  'not-object.mjs': `export default () => 42;`,
  'hang.mjs': `
export default (record, ctx) => {
  if (record.payload.late && ctx.attempt === 1) {
    // ignores the signal and answers after its timeout: that answer must be dropped
    return new Promise((resolve) => setTimeout(() => { globalThis.moduleProbe.lateFinished = true; resolve({ late: true }); }, 600));
  }
  if (record.payload.late) return { on_time: ctx.attempt };
  return new Promise(() => {});
};`,
  'waits.mjs': `
export default (record, ctx) => {
  if (record.payload.go) return { went: true };
  globalThis.moduleProbe.started = true;
  return new Promise((resolve, reject) => {
    ctx.signal.addEventListener('abort', () => {
      globalThis.moduleProbe.abortReason = ctx.signal.reason.message;
      reject(ctx.signal.reason);
    });
  });
};`,
  'no-default.mjs': `export const processor = () => ({});`,
  'counted.mjs': `
globalThis.moduleProbe.imports += 1;
export default (record) => ({ category: record.category });`,
};

const FILE = `
defaults:
  timeout_ms: 10000
categories:
  result: { processor: { module: ./result.mjs } }
  permanent: { processor: { module: ./permanent.mjs } }
  unrecoverable: { processor: { module: ./unrecoverable.mjs } }
  transient: { processor: { module: ./transient.mjs } }
  not-object: { processor: { module: ./not-object.mjs } }
  hang: { processor: { module: ./hang.mjs, timeout_ms: 200 } }
  waits: { processor: { module: ./waits.mjs } }
  plain:
`;

describe('module processors', function () {
  this.timeout(60_000);
  let files: CategoriesDir;
  let h: Harness;
  let open: Harness | undefined;
  let file: string;

  before(() => {
    files = categoriesDir();
    for (const [name, text] of Object.entries(MODULES)) files.write(name, text);
    file = files.write('categories.yaml', FILE);
  });
  after(() => files?.remove());
  beforeEach(() => {
    (globalThis as unknown as { moduleProbe: Probe }).moduleProbe = {
      imports: 0,
      calls: [],
      started: false,
      abortReason: null,
      lateFinished: false,
    };
  });
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  const start = async (env: Record<string, string> = {}) => {
    h = await createHarness({ worker: true, env: { CATEGORIES_FILE: file, ...env } });
    open = h;
  };
  const submit = async (category: string, payload: object, requestId = `req-${category}`) => {
    const res = await h.http
      .post('/records?process=true')
      .set('X-Request-ID', requestId)
      .send({ source: 'test', category, payload })
      .expect(201);
    return res.body.id as string;
  };

  it('the returned object is the result; ctx carries attempt, maxAttempts, requestId, signal and log', async () => {
    await start({ MAX_ATTEMPTS: '4' });
    const ids = await Promise.all([1, 2, 3].map((n) => submit('result', { n }, `req-${n}`)));
    const done = await Promise.all(ids.map((id) => h.waitForTerminal(id)));
    expect(done.map((r) => [r.status, r.result])).to.deep.equal(
      [1, 2, 3].map((n) => ['processed', { doubled: n * 2, aborted: false }]),
    );
    expect(
      probe()
        .calls.map((c) => c.requestId)
        .sort(),
    ).to.deep.equal(['req-1', 'req-2', 'req-3']);
    expect(probe().calls.every((c) => c.attempt === 1 && c.maxAttempts === 4)).to.equal(true);
    const line = h.logs.find((l) => l.msg === 'doubling' && l.n === 2);
    expect(line).to.include({ record_id: ids[1], request_id: 'req-2' });
    // and the seed's rule still serves a listed category without a processor of its own
    const plain = await h.waitForTerminal(await submit('plain', { priority: 4 }));
    expect(plain.result).to.deep.equal({ classification: 'high', score: 4 });
  });

  it('permanent: true and UnrecoverableError fail the record at once', async () => {
    await start();
    const permanent = await h.waitForTerminal(await submit('permanent', {}));
    expect(permanent).to.include({ status: 'failed', error: 'amount is over the limit', attempts: 1 });
    const unrecoverable = await h.waitForTerminal(await submit('unrecoverable', {}));
    expect(unrecoverable).to.include({ status: 'failed', error: 'supplier unknown', attempts: 1 });
  });

  it('any other error is transient: retried, then failed with the last error after MAX_ATTEMPTS', async () => {
    await start({ MAX_ATTEMPTS: '3' });
    const recovers = await h.waitForTerminal(await submit('transient', { succeed_at: 3 }));
    expect(recovers).to.deep.include({ status: 'processed', result: { attempt: 3 }, attempts: 3 });
    const never = await h.waitForTerminal(await submit('transient', { succeed_at: 99 }));
    expect(never).to.include({ status: 'failed', error: 'upstream busy on attempt 3', attempts: 3 });
    const notObject = await h.waitForTerminal(await submit('not-object', {}));
    expect(notObject).to.include({ status: 'failed', error: 'processor returned number, not an object' });
  });

  it('a processor that ignores its signal is cut at its timeout, retried, and its late result dropped', async () => {
    await start({ MAX_ATTEMPTS: '2' });
    const hung = await submit('hang', {});
    const startedAt = Date.now();
    const failed = await h.waitForTerminal(hung);
    expect(failed).to.include({ status: 'failed', error: 'processor timed out after 200 ms', attempts: 2 });
    expect(Date.now() - startedAt).to.be.below(3000);

    const late = await h.waitForTerminal(await submit('hang', { late: true }));
    expect(late).to.deep.include({ status: 'processed', result: { on_time: 2 }, attempts: 2 });
    await new Promise((r) => setTimeout(r, 700));
    expect(probe().lateFinished).to.equal(true);
    expect((await h.db.records.findById(late.id))!.result).to.deep.equal({ on_time: 2 });
    const history = await h.db.transitions.history(late.id);
    expect(history!.filter((t) => t.to === 'processed')).to.have.length(1);
  });

  it('shutdown aborts an active processor; the record stays pending and another worker finishes it', async () => {
    await start();
    const id = await submit('waits', {});
    for (let i = 0; i < 200 && !probe().started; i++) await new Promise((r) => setTimeout(r, 20));
    expect(probe().started).to.equal(true);
    const closing = Date.now();
    await h.worker!.close();
    expect(Date.now() - closing).to.be.below(5000);
    expect(probe().abortReason).to.equal('worker shutting down: attempt abandoned');
    const left = await h.db.records.findById(id);
    expect(left).to.include({ status: 'pending', attempts: 1, error: 'worker shutting down: attempt abandoned' });

    // the job is retried by the next worker; this time the record says go
    await h.db
      .knex('records')
      .where({ id })
      .update({ payload: JSON.stringify({ go: true }) });
    h.startWorker();
    const done = await h.waitForTerminal(id);
    expect(done).to.deep.include({ status: 'processed', result: { went: true } });
  });

  it("per-category processor metrics on the worker's registry: duration and outcomes by category and kind", async () => {
    await start({ MAX_ATTEMPTS: '2' });
    await Promise.all([
      h.waitForTerminal(await submit('result', { n: 1 })),
      h.waitForTerminal(await submit('permanent', {})),
      h.waitForTerminal(await submit('transient', { succeed_at: 9 })),
      h.waitForTerminal(await submit('plain', {})),
      h.waitForTerminal(await submit('anything-else', {})),
    ]);
    const text = await h.worker!.metrics.registry.metrics();
    // the value of the sample with exactly these labels, besides the registry's own service="worker"
    const value = (sample: string) => {
      const [, name, labels] = /^(\w+)\{(.*)\}$/.exec(sample)!;
      const wanted = [...labels!.split(','), 'service="worker"'].sort().join(',');
      for (const line of text.split('\n')) {
        const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
        if (m && m[1] === name && m[2]!.split(',').sort().join(',') === wanted) return Number(m[3]);
      }
      return null;
    };
    expect(value('workflow_processor_runs_total{category="result",processor="module",outcome="processed"}')).to.equal(
      1,
    );
    expect(value('workflow_processor_runs_total{category="permanent",processor="module",outcome="failed"}')).to.equal(
      1,
    );
    expect(value('workflow_processor_runs_total{category="transient",processor="module",outcome="retried"}')).to.equal(
      1,
    );
    expect(value('workflow_processor_runs_total{category="transient",processor="module",outcome="failed"}')).to.equal(
      1,
    );
    expect(value('workflow_processor_runs_total{category="plain",processor="builtin",outcome="processed"}')).to.equal(
      1,
    );
    // unlisted categories share one label, so a client cannot grow the metrics without bound
    expect(
      value('workflow_processor_runs_total{category="(unlisted)",processor="builtin",outcome="processed"}'),
    ).to.equal(1);
    expect(value('workflow_processor_duration_seconds_count{category="transient",processor="module"}')).to.equal(2);
    expect(text).not.to.include('anything-else');
  });

  it('imports each module once per worker, and a broken module stops the start naming file and category', async () => {
    const once = files.write(
      'once.yaml',
      'categories:\n  a: { processor: { module: ./counted.mjs } }\n  b: { processor: { module: counted.mjs } }\n',
    );
    const processors = createProcessors(loadCategories(once, {}));
    await processors.load();
    await processors.load();
    const record = { category: 'a', payload: {} } as never;
    const ctx = {} as never;
    expect(await processors.for('a').run(record, ctx)).to.deep.equal({ category: 'a' });
    expect(await processors.for('b').run(record, ctx)).to.deep.equal({ category: 'a' });
    expect(probe().imports).to.equal(1);
    const broken = files.write('broken.yaml', 'categories:\n  lead: { processor: { module: ./no-default.mjs } }\n');
    const error = await createProcessors(loadCategories(broken, {}))
      .load()
      .catch((e: Error) => e);
    expect((error as Error).message).to.equal(
      `${broken}: category "lead": processor module ${files.dir}/no-default.mjs must export a function as its default export`,
    );
  });
});
