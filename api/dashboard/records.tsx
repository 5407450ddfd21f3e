import { useState } from 'preact/hooks';
import { getJson, query } from './api.js';
import { fromLocalInput, number, when } from './format.js';
import { usePoll } from './poll.js';
import { href, navigate, type Route } from './router.js';
import { DateRangeFields, SelectField, TextField } from './field.js';
import { StatusBadge } from './status.js';
import type { RecordsPage } from './types.js';

const FILTERS = ['status', 'category', 'source', 'created_after', 'created_before', 'sort_by', 'sort_order'] as const;
const PAGE_SIZE = 50;

/** The listing's parameters from the route: the filters, the order and the cursor. */
function listParams(route: Route): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const f of FILTERS) out[f] = route.params.get(f) ?? undefined;
  return out;
}

export function Records({ route }: { route: Route }) {
  const params = listParams(route);
  const cursor = route.params.get('cursor') ?? undefined;
  // the cursors of the pages before this one, for "Previous page"
  const [previous, setPrevious] = useState<string[]>([]);
  const key = `${JSON.stringify(params)}|${cursor ?? ''}`;
  const { data, error } = usePoll(
    () => getJson<RecordsPage>(`/records${query({ ...params, cursor, limit: PAGE_SIZE })}`),
    key,
  );

  const apply = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const value = (name: string) => String(form.get(name) ?? '').trim() || undefined;
    setPrevious([]);
    navigate('/records', {
      status: value('status'),
      category: value('category'),
      source: value('source'),
      created_after: fromLocalInput(String(form.get('from') ?? '')),
      created_before: fromLocalInput(String(form.get('to') ?? '')),
      sort_by: value('sort_by'),
      sort_order: value('sort_order'),
    });
  };
  const next = () => {
    if (!data?.next_cursor) return;
    setPrevious([...previous, cursor ?? '']);
    navigate('/records', { ...params, cursor: data.next_cursor });
  };
  const back = () => {
    const before = previous[previous.length - 1];
    setPrevious(previous.slice(0, -1));
    navigate('/records', { ...params, cursor: before || undefined });
  };
  const csv = `/records${query({ ...params, format: 'csv' })}`;

  return (
    <section aria-labelledby="records-title">
      <h1 id="records-title">Records</h1>
      <form class="filters" onSubmit={apply} key={JSON.stringify(params)} aria-label="Filter records">
        <SelectField
          form="records"
          name="status"
          label="Status"
          value={params.status ?? ''}
          options={[
            ['', 'any'],
            ['pending', 'pending'],
            ['processed', 'processed'],
            ['failed', 'failed'],
          ]}
        />
        <TextField form="records" name="category" label="Category" value={params.category ?? ''} maxLength={128} />
        <TextField form="records" name="source" label="Source" value={params.source ?? ''} maxLength={128} />
        <DateRangeFields form="records" from={params.created_after ?? null} to={params.created_before ?? null} />
        <SelectField
          form="records"
          name="sort_by"
          label="Sort by"
          value={params.sort_by ?? 'created_at'}
          options={[
            ['created_at', 'created'],
            ['status', 'status'],
            ['category', 'category'],
            ['source', 'source'],
          ]}
        />
        <SelectField
          form="records"
          name="sort_order"
          label="Order"
          value={params.sort_order ?? 'desc'}
          options={[
            ['desc', 'newest first'],
            ['asc', 'oldest first'],
          ]}
        />
        <button type="submit">Apply filters</button>
      </form>
      {error && (
        <p class="error" role="alert">
          Could not read the records: {error}
        </p>
      )}
      {data && (
        <>
          <p class="summary-line">
            <span data-records-total>{number(data.total)}</span> records match.{' '}
            <a href={csv} download="records.csv">
              Download CSV
            </a>
          </p>
          <div class="scroll" tabIndex={0} role="region" aria-label="Matching records">
            <table>
              <thead>
                <tr>
                  <th scope="col">Record</th>
                  <th scope="col">Status</th>
                  <th scope="col">Category</th>
                  <th scope="col">Source</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Created</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {data.items.length === 0 && (
                  <tr>
                    <td colSpan={7}>No records match these filters.</td>
                  </tr>
                )}
                {data.items.map((r) => (
                  <tr key={r.id} data-record-id={r.id}>
                    <th scope="row">
                      <a href={href(`/records/${r.id}`)} class="mono">
                        {/* ids are time-ordered: records made together share their start, not their end */}
                        <span class="visually-hidden">{r.id.slice(0, -12)}</span>
                        <span aria-hidden="true">…</span>
                        {r.id.slice(-12)}
                      </a>
                    </th>
                    <td>
                      <StatusBadge status={r.status} />
                    </td>
                    <td>{r.category}</td>
                    <td>{r.source}</td>
                    <td>{r.attempts}</td>
                    <td>{when(r.created_at)}</td>
                    <td class="clip">{r.error ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages">
            <button type="button" onClick={back} disabled={previous.length === 0 && !cursor}>
              Previous page
            </button>
            <button type="button" onClick={next} disabled={!data.next_cursor}>
              Next page
            </button>
          </nav>
        </>
      )}
    </section>
  );
}
