import bunyan from 'bunyan';
import { expect } from 'chai';
import { closeInOrder, withTimeout, type Logger } from '../../shared/index.js';

interface Line {
  msg: string;
  level: number;
  [key: string]: unknown;
}

function memoryLogger(lines: Line[]): Logger {
  return bunyan.createLogger({
    name: 'test',
    streams: [{ type: 'raw', level: 'trace', stream: { write: (rec: object) => void lines.push(rec as Line) } }],
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('closeInOrder', () => {
  let lines: Line[];
  let logger: Logger;
  beforeEach(() => {
    lines = [];
    logger = memoryLogger(lines);
  });

  it('runs the steps one after another, in order, and is clean when all end in time', async () => {
    const events: string[] = [];
    const step = (name: string, ms: number) => ({
      name,
      run: async () => {
        events.push(`${name} start`);
        await sleep(ms);
        events.push(`${name} end`);
      },
    });
    const close = closeInOrder([step('a', 20), step('b', 0), step('c', 10)], logger, { timeoutMs: 5000 });
    expect(await close()).to.equal('clean');
    expect(events).to.deep.equal(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });

  it('a step that throws or rejects is logged, and the later steps still run; the close is still clean', async () => {
    const ran: string[] = [];
    const close = closeInOrder(
      [
        {
          name: 'throws',
          run: () => {
            throw new Error('sync boom');
          },
        },
        { name: 'rejects', run: () => Promise.reject(new Error('async boom')) },
        { name: 'last', run: () => void ran.push('last') },
      ],
      logger,
      { timeoutMs: 5000 },
    );
    expect(await close()).to.equal('clean');
    expect(ran).to.deep.equal(['last']);
    const failed = lines.filter((l) => l.msg === 'shutdown step failed');
    expect(failed.map((l) => [l.step, (l.err as { message: string }).message])).to.deep.equal([
      ['throws', 'sync boom'],
      ['rejects', 'async boom'],
    ]);
  });

  it('called twice, returns the same promise and runs each step once', async () => {
    let runs = 0;
    const close = closeInOrder([{ name: 'once', run: () => sleep(10).then(() => runs++) }], logger, {
      timeoutMs: 5000,
    });
    const first = close();
    const second = close();
    expect(second).to.equal(first);
    await first;
    expect(await close()).to.equal('clean');
    expect(runs).to.equal(1);
  });

  it('at the deadline abandons the running step, gives the rest the grace window, and reports the close as cut', async () => {
    const events: string[] = [];
    let signalSeen: AbortSignal | undefined;
    const close = closeInOrder(
      [
        {
          name: 'hangs',
          run: (deadline) => {
            signalSeen = deadline;
            events.push('hangs start');
            return new Promise(() => undefined); // waits on a Redis that never answers
          },
        },
        {
          name: 'after',
          run: (deadline) => {
            events.push(`after start, deadline aborted: ${deadline.aborted}`);
            return sleep(20);
          },
        },
      ],
      logger,
      { timeoutMs: 100, graceMs: 500 },
    );
    const started = Date.now();
    expect(await close()).to.equal('cut');
    const took = Date.now() - started;
    expect(took).to.be.within(90, 400);
    expect(signalSeen?.aborted).to.equal(true);
    expect(events).to.deep.equal(['hangs start', 'after start, deadline aborted: true']);
    const abandoned = lines.filter((l) => l.msg === 'shutdown step still running at the deadline: abandoned');
    expect(abandoned.map((l) => l.step)).to.deep.equal(['hangs']);
    expect(abandoned[0]).to.include({ level: 40, timeout_ms: 100 });
  });

  it('a step still running at the end of the grace window is abandoned too, and the ones after it skipped', async () => {
    const ran: string[] = [];
    const forever = () => new Promise(() => undefined);
    const close = closeInOrder(
      [
        { name: 'first', run: forever },
        { name: 'second', run: forever },
        { name: 'third', run: () => void ran.push('third') },
        { name: 'fourth', run: () => void ran.push('fourth') },
      ],
      logger,
      { timeoutMs: 50, graceMs: 100 },
    );
    const started = Date.now();
    expect(await close()).to.equal('cut');
    expect(Date.now() - started).to.be.within(140, 400);
    expect(ran).to.deep.equal([]);
    expect(
      lines.filter((l) => l.msg === 'shutdown step still running at the deadline: abandoned').map((l) => l.step),
    ).to.deep.equal(['first', 'second']);
    expect(lines.find((l) => l.msg === 'shutdown steps skipped: no time left')?.steps).to.deep.equal([
      'third',
      'fourth',
    ]);
  });

  it('a step that rejects after being abandoned is no unhandled rejection', async () => {
    const close = closeInOrder(
      [{ name: 'late failure', run: () => sleep(80).then(() => Promise.reject(new Error('too late'))) }],
      logger,
      { timeoutMs: 20, graceMs: 20 },
    );
    expect(await close()).to.equal('cut');
    await sleep(120); // test/setup.ts fails the run on an unhandled rejection
    expect(lines.find((l) => l.msg === 'shutdown step failed')?.step).to.equal('late failure');
  });

  it('a clean close leaves no timer behind', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await Promise.resolve(); // mocha arms its own test timer once the test has started
    const before = timers();
    const close = closeInOrder([{ name: 'quick', run: () => undefined }], logger, { timeoutMs: 60_000 });
    expect(await close()).to.equal('clean');
    expect(timers()).to.equal(before);
  });
});

describe('withTimeout', () => {
  it('resolves with the value when the promise settles in time', async () => {
    expect(
      await withTimeout(
        sleep(5).then(() => 42),
        1000,
        'late',
      ),
    ).to.equal(42);
  });

  it('rejects with the given message when the promise takes longer', async () => {
    const started = Date.now();
    const err = await withTimeout(new Promise(() => undefined), 30, 'enqueue timed out').catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error).with.property('message', 'enqueue timed out');
    expect(Date.now() - started).to.be.within(25, 500);
  });

  it('passes the promise’s own rejection through', async () => {
    const err = await withTimeout(Promise.reject(new Error('refused')), 1000, 'late').catch((e: Error) => e);
    expect(err).to.have.property('message', 'refused');
  });

  it('clears its timer once the promise settles', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await Promise.resolve(); // mocha arms its own test timer once the test has started
    const before = timers();
    await withTimeout(Promise.resolve('now'), 60_000, 'late');
    expect(timers()).to.equal(before);
  });
});
