import { expect } from 'chai';
import fc from 'fast-check';
import { Coalescer } from '../../shared/index.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** What a settled promise came to: its value, or the error it was rejected with. */
const outcome = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );

class Refused extends Error {
  constructor(readonly items: readonly number[]) {
    super(`refused ${items.join(',')}`);
  }
}

/** A group call that answers item × 10, and refuses any group holding an item in `bad`. */
function recordingCall(bad: ReadonlySet<number> = new Set()) {
  const calls: number[][] = [];
  const call = async (items: number[]) => {
    calls.push([...items]);
    await nextTurn();
    if (items.some((i) => bad.has(i))) throw new Refused(items);
    return items.map((i) => i * 10);
  };
  return { calls, call };
}

describe('Coalescer', () => {
  it('sends items submitted together in one call and answers each caller with its own output', async () => {
    const { calls, call } = recordingCall();
    const coalescer = new Coalescer(call);
    const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => coalescer.submit(i)));
    expect(calls).to.deep.equal([[1, 2, 3, 4, 5]]);
    expect(answers).to.deep.equal([10, 20, 30, 40, 50]);
  });

  it('sends the items that arrive during a call together in the next one', async () => {
    const { calls, call } = recordingCall();
    const coalescer = new Coalescer(call);
    const first = coalescer.submit(1);
    await nextTurn(); // the call for 1 is in flight
    const later = [2, 3, 4].map((i) => coalescer.submit(i));
    expect(await Promise.all([first, ...later])).to.deep.equal([10, 20, 30, 40]);
    expect(calls).to.deep.equal([[1], [2, 3, 4]]);
  });

  it('never puts more than maxGroup items in one call', async () => {
    const { calls, call } = recordingCall();
    const coalescer = new Coalescer(call, { maxGroup: 3 });
    const answers = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => coalescer.submit(i)));
    expect(calls).to.deep.equal([[1, 2, 3], [4, 5, 6], [7]]);
    expect(answers).to.deep.equal([10, 20, 30, 40, 50, 60, 70]);
  });

  it('calls for a lone item on the next turn of the event loop', async () => {
    const { calls, call } = recordingCall();
    const coalescer = new Coalescer(call);
    const answer = coalescer.submit(7);
    expect(calls).to.deep.equal([]);
    await nextTurn();
    expect(calls).to.deep.equal([[7]]);
    expect(await answer).to.equal(70);
  });

  it('when a group call fails, answers everyone else and rejects only the item that fails on its own', async () => {
    const { calls, call } = recordingCall(new Set([6]));
    const coalescer = new Coalescer(call);
    const outcomes = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => outcome(coalescer.submit(i))));
    expect(outcomes.filter((o) => 'value' in o)).to.deep.equal(
      [10, 20, 30, 40, 50, 70, 80].map((value) => ({ value })),
    );
    const refused = outcomes[5] as { error: unknown };
    // the error the call for that item alone threw, not a wrapper
    expect(refused.error).to.be.instanceOf(Refused);
    expect((refused.error as Refused).items).to.deep.equal([6]);
    // halves, first half first, down to the refused item: 1 + 2 + 2 + 2 calls
    expect(calls).to.deep.equal([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8], [5, 6], [5], [6], [7, 8]]);
  });

  it('isolates every refused item of a group, whatever their number and places', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 39 }), { maxLength: 6 }),
        async (size, badIndexes) => {
          const items = Array.from({ length: size }, (_, i) => i);
          const bad = new Set(badIndexes.filter((i) => i < size));
          const { calls, call } = recordingCall(bad);
          const coalescer = new Coalescer(call, { maxGroup: 16 });
          const outcomes = await Promise.all(items.map((i) => outcome(coalescer.submit(i))));
          outcomes.forEach((o, i) => {
            if (bad.has(i)) expect((o as { error: Refused }).error.items).to.deep.equal([i]);
            else expect(o).to.deep.equal({ value: i * 10 });
          });
          // every call holds a run of consecutive items, in submit order
          for (const c of calls) expect(c).to.deep.equal(c.map((_, k) => c[0]! + k));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails the whole group at once on an error that failsWholeGroup says is no item’s fault', async () => {
    const unreachable = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const calls: number[][] = [];
    const coalescer = new Coalescer<number, number>(
      async (items) => {
        calls.push(items);
        throw unreachable;
      },
      { failsWholeGroup: (err) => (err as { code?: string }).code === 'ECONNREFUSED' },
    );
    const outcomes = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => outcome(coalescer.submit(i))));
    expect(outcomes).to.deep.equal([1, 2, 3, 4, 5, 6].map(() => ({ error: unreachable })));
    outcomes.forEach((o) => expect((o as { error: unknown }).error).to.equal(unreachable));
    expect(calls).to.deep.equal([[1, 2, 3, 4, 5, 6]]);
  });

  it('stops isolating and fails the rest of the group once such an error appears in a smaller call', async () => {
    const refused = new Error('refused');
    const unreachable = new Error('database unreachable');
    const calls: number[][] = [];
    const coalescer = new Coalescer<number, number>(
      async (items) => {
        calls.push(items);
        if (calls.length === 1) throw refused;
        if (calls.length === 2) return items.map((i) => i * 10);
        throw unreachable;
      },
      { failsWholeGroup: (err) => err === unreachable },
    );
    const outcomes = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => outcome(coalescer.submit(i))));
    expect(outcomes).to.deep.equal([
      ...[10, 20, 30, 40].map((value) => ({ value })),
      ...[5, 6, 7, 8].map(() => ({ error: unreachable })),
    ]);
    expect(calls).to.deep.equal([
      [1, 2, 3, 4, 5, 6, 7, 8],
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
  });

  it('rejects a lone failing item with the error its call threw, and goes on with the next group', async () => {
    const thrown = new Error('refused');
    const coalescer = new Coalescer<number, number>(async (items) => {
      if (items.includes(1)) throw thrown;
      return items.map((i) => i * 10);
    });
    const failing = outcome(coalescer.submit(1));
    await nextTurn();
    const next = coalescer.submit(2);
    expect(await failing).to.deep.equal({ error: thrown });
    expect(((await failing) as { error: unknown }).error).to.equal(thrown);
    expect(await next).to.equal(20);
  });
});
