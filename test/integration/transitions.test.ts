import { expect } from 'chai';
import type { TransitionInput } from '../../shared/index.js';
import { createHarness, type Harness } from '../helpers/harness.js';

describe('applyTransitions (group commit of guarded transitions)', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await createHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  async function create(n: number): Promise<string[]> {
    const outcome = await h.db.records.insertRecords(
      Array.from({ length: n }, (_, i) => ({
        input: { source: 's', category: 'c', payload: { i } },
        process: true,
        requestId: `req-${i}`,
      })),
    );
    if (outcome.replayed) throw new Error('unexpected replay');
    return outcome.records.map((r) => r.id);
  }

  const outcome = (recordId: string, extra: Partial<TransitionInput> = {}): TransitionInput => ({
    recordId,
    seq: 1,
    to: 'processed',
    result: { ok: true },
    attempt: 1,
    requestId: 'r',
    jobId: `${recordId}-1`,
    ...extra,
  });

  it('writes a whole group in one call and reports, per outcome, whether its guard matched', async () => {
    const [a, b, c, d] = await create(4);
    const applied = await h.db.transitions.applyTransitions([
      outcome(a!),
      outcome(b!, { to: 'failed', result: null, error: 'bad input', attempt: 2 }),
      outcome(a!, { attempt: 3 }), // a second delivery of a, in the same group
      outcome(c!, { seq: 2 }), // an outcome for a queueing that is not the current one
      outcome('00000000-0000-4000-8000-000000000000'),
    ]);
    expect(applied).to.deep.equal([true, true, false, false, false]);

    const rows = (await h.db.knex('records').select('id', 'status', 'attempts', 'error', 'queued_at')) as Array<
      Record<string, unknown>
    >;
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(a)).to.include({ status: 'processed', attempts: 1, error: null, queued_at: null });
    expect(byId.get(b)).to.include({ status: 'failed', attempts: 2, error: 'bad input' });
    expect(byId.get(c)).to.include({ status: 'pending' });
    expect(byId.get(d)).to.include({ status: 'pending' });
    const history = (await h.db.knex('record_transitions').select('record_id', 'to_status', 'attempt')) as Array<
      Record<string, unknown>
    >;
    expect(history).to.have.deep.members([
      { record_id: a, to_status: 'processed', attempt: 1 },
      { record_id: b, to_status: 'failed', attempt: 2 },
    ]);

    // the same group again changes nothing: every guard now fails
    expect(await h.db.transitions.applyTransitions([outcome(a!), outcome(b!)])).to.deep.equal([false, false]);
  });

  it('applies hundreds of outcomes at once, past the 500-row limit of SQLite compound selects', async () => {
    const ids = await create(650);
    const applied = await h.db.transitions.applyTransitions(ids.map((id) => outcome(id)));
    expect(applied.every(Boolean)).to.equal(true);
    const [{ n }] = (await h.db.knex('record_transitions').count({ n: '*' })) as Array<{ n: number | string }>;
    expect(Number(n)).to.equal(650);
  });
});
