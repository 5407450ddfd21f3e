import { useRef, useState } from 'preact/hooks';
import { getJson, postJson, query } from './api.js';
import { fromLocalInput, number, when } from './format.js';
import { DateRangeFields, TextField } from './field.js';
import { usePoll } from './poll.js';
import { navigate, type Route } from './router.js';
import type { FailuresReport } from './types.js';

const FILTERS = ['category', 'source', 'error_contains', 'created_after', 'created_before'] as const;
// the most records one bulk retry touches (the API's limit)
const RETRY_MAX = 10_000;

type Filter = Partial<Record<(typeof FILTERS)[number] | 'error', string>>;

interface Pending {
  filter: Filter;
  count: number;
  what: string;
}

export function Failures({ route }: { route: Route }) {
  const filter: Filter = {};
  for (const f of FILTERS) {
    const v = route.params.get(f);
    if (v) filter[f] = v;
  }
  const key = JSON.stringify(filter);
  const { data, error, refresh } = usePoll(
    () => getJson<FailuresReport>(`/reports/failures${query({ ...filter, limit: 100 })}`),
    key,
  );
  const dialog = useRef<HTMLDialogElement>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [message, setMessage] = useState('');

  const apply = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const value = (name: string) => String(form.get(name) ?? '').trim() || undefined;
    navigate('/failures', {
      category: value('category'),
      source: value('source'),
      error_contains: value('error_contains'),
      created_after: fromLocalInput(String(form.get('from') ?? '')),
      created_before: fromLocalInput(String(form.get('to') ?? '')),
    });
  };
  const confirm = (p: Pending) => {
    setPending(p);
    dialog.current?.showModal();
  };
  const run = async () => {
    if (!pending) return;
    dialog.current?.close();
    try {
      const { retried } = await postJson<{ retried: number }>('/records/retry', {
        filter: pending.filter,
        limit: RETRY_MAX,
      });
      setMessage(`Retried ${number(retried)} records.`);
    } catch (err) {
      setMessage(`Retry failed: ${(err as Error).message}`);
    }
    setPending(null);
    refresh();
  };
  const touched = (count: number) => Math.min(count, RETRY_MAX);

  return (
    <section aria-labelledby="failures-title">
      <h1 id="failures-title">Failures</h1>
      <form class="filters" onSubmit={apply} key={key} aria-label="Filter failures">
        <TextField form="failures" name="category" label="Category" value={filter.category ?? ''} maxLength={128} />
        <TextField form="failures" name="source" label="Source" value={filter.source ?? ''} maxLength={128} />
        <TextField
          form="failures"
          name="error_contains"
          label="Error contains"
          value={filter.error_contains ?? ''}
          maxLength={2000}
        />
        <DateRangeFields form="failures" from={filter.created_after ?? null} to={filter.created_before ?? null} />
        <button type="submit">Apply filters</button>
      </form>
      <p role="status" class="message">
        {message}
      </p>
      {error && (
        <p class="error" role="alert">
          Could not read the failures: {error}
        </p>
      )}
      {data && (
        <>
          <p class="summary-line">
            <span data-failures-total>{number(data.total)}</span> failed records, {number(data.group_count)} distinct
            errors.{' '}
            <button
              type="button"
              disabled={data.total === 0}
              onClick={() => confirm({ filter, count: data.total, what: 'every failed record matching these filters' })}
            >
              Retry all matching
            </button>
          </p>
          <div class="scroll" tabIndex={0} role="region" aria-label="Failures by error">
            <table>
              <thead>
                <tr>
                  <th scope="col">Error</th>
                  <th scope="col">Records</th>
                  <th scope="col">First seen</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {data.groups.length === 0 && (
                  <tr>
                    <td colSpan={5}>No failed records match.</td>
                  </tr>
                )}
                {data.groups.map((g, i) => (
                  <tr key={g.error ?? ''} data-group={i}>
                    <th scope="row" class="clip">
                      <pre class="inline">{g.error ?? '(no error text)'}</pre>
                    </th>
                    <td>{number(g.count)}</td>
                    <td>{when(g.first_seen)}</td>
                    <td>{when(g.last_seen)}</td>
                    <td>
                      {g.error !== null && (
                        <button
                          type="button"
                          onClick={() =>
                            confirm({
                              filter: { ...filter, error: g.error! },
                              count: g.count,
                              what: 'the failed records with this error',
                            })
                          }
                        >
                          Retry group
                          <span class="visually-hidden"> of {number(g.count)} records</span>
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {data.group_count > data.groups.length && (
            <p>
              The {number(data.groups.length)} largest of {number(data.group_count)} errors are listed; narrow the
              filters to see the others.
            </p>
          )}
        </>
      )}
      <dialog ref={dialog} aria-labelledby="confirm-title" onClose={() => setPending(null)}>
        {pending && (
          <form method="dialog">
            <h2 id="confirm-title">Retry {number(touched(pending.count))} records?</h2>
            <p data-confirm-count={touched(pending.count)}>
              This sends {number(touched(pending.count))} records ({pending.what}
              {pending.count > RETRY_MAX ? `: the oldest ${number(RETRY_MAX)} of ${number(pending.count)}` : ''}) back
              to pending and queues them again.
            </p>
            <div class="toolbar">
              <button type="button" onClick={run}>
                Confirm retry
              </button>
              <button type="submit" value="cancel">
                Cancel
              </button>
            </div>
          </form>
        )}
      </dialog>
    </section>
  );
}
