import bunyan from 'bunyan';
import { expect } from 'chai';
import { UnrecoverableError } from 'bullmq';
import type { WorkflowRecord } from '../../shared/index.js';
import {
  isPermanent,
  messageOf,
  ProcessorTimeoutError,
  ShutdownAbortError,
  type CategoryProcessor,
  type Processor,
} from '../../worker/processors/index.js';
import { runProcessor } from '../../worker/run-processor.js';

const record = { id: 'r', category: 'c', payload: {} } as unknown as WorkflowRecord;
const ctx = {
  attempt: 1,
  maxAttempts: 3,
  requestId: null,
  jobId: 'r-1',
  log: bunyan.createLogger({ name: 't', streams: [] }),
};
const processor = (run: Processor, timeoutMs = 1000): CategoryProcessor => ({
  kind: 'module',
  run,
  timeoutMs,
  label: 'c',
});
const outcome = (p: CategoryProcessor, shutdown?: AbortSignal) =>
  runProcessor(p, record, ctx, shutdown).then(
    (result) => ({ result }),
    (error: Error) => ({ error }),
  );

describe('running one processor attempt', () => {
  it('returns the JSON object, as JSON (undefined members dropped, dates as text)', async () => {
    const at = new Date('2026-01-01T00:00:00Z');
    expect(await outcome(processor(() => ({ a: 1, gone: undefined, at }) as never))).to.deep.equal({
      result: { a: 1, at: '2026-01-01T00:00:00.000Z' },
    });
  });

  it('anything other than a JSON object is a transient error saying what came back', async () => {
    for (const [value, what] of [
      [null, 'null'],
      [[1], 'an array'],
      ['done', 'string'],
      [undefined, 'undefined'],
    ] as const) {
      const { error } = (await outcome(processor(() => value as never))) as { error: Error };
      expect(error.message).to.equal(`processor returned ${what}, not an object`);
      expect(isPermanent(error)).to.equal(false);
    }
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const { error } = (await outcome(processor(() => circular as never))) as { error: Error };
    expect(error.message).to.match(/^processor result is not JSON: /);
    const big = (await outcome(processor(() => ({ n: 1n }) as never))) as { error: Error };
    expect(big.error.message).to.match(/^processor result is not JSON: .*BigInt/);
  });

  it('a synchronous throw is an attempt failure like a rejection', async () => {
    const { error } = (await outcome(
      processor(() => {
        throw new Error('boom');
      }),
    )) as { error: Error };
    expect(error.message).to.equal('boom');
  });

  it('the timeout aborts the signal with a ProcessorTimeoutError and ends the attempt', async () => {
    let seen: unknown;
    const started = Date.now();
    const { error } = (await outcome(
      processor((_, c) => {
        c.signal.addEventListener('abort', () => (seen = c.signal.reason));
        return new Promise(() => undefined);
      }, 50),
    )) as { error: Error };
    expect(error).to.be.instanceOf(ProcessorTimeoutError).with.property('message', 'processor timed out after 50 ms');
    expect(seen).to.equal(error);
    expect(Date.now() - started).to.be.below(1000);
  });

  it('a shutdown already under way gives the attempt up at once', async () => {
    const stopping = new AbortController();
    stopping.abort();
    const { error } = (await outcome(
      processor(() => new Promise(() => undefined)),
      stopping.signal,
    )) as { error: Error };
    expect(error).to.be.instanceOf(ShutdownAbortError);
  });

  it('permanent: BullMQ UnrecoverableError, one of that name, or permanent: true', () => {
    expect(isPermanent(new UnrecoverableError('x'))).to.equal(true);
    expect(isPermanent(Object.assign(new Error('x'), { name: 'UnrecoverableError' }))).to.equal(true);
    expect(isPermanent(Object.assign(new Error('x'), { permanent: true }))).to.equal(true);
    expect(isPermanent(Object.assign(new Error('x'), { permanent: 'yes' }))).to.equal(false);
    expect(isPermanent(null)).to.equal(false);
    expect(isPermanent('text')).to.equal(false);
  });

  it('the message of whatever was thrown', () => {
    expect(messageOf(new Error('a'))).to.equal('a');
    expect(messageOf('b')).to.equal('b');
    expect(messageOf(42)).to.equal('42');
    expect(messageOf(new Error(''))).to.equal('processing failed');
  });
});
