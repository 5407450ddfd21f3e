import { getJson, query } from './api.js';
import { Chart } from './chart.js';
import { DateRangeFields } from './field.js';
import { fromLocalInput, ms, number, percent } from './format.js';
import { usePoll } from './poll.js';
import { href, navigate, type Route } from './router.js';
import type { Health, LatencySeries, Summary, Timeseries } from './types.js';

type RangeName = 'hour' | 'day' | 'week' | 'custom';
type Bucket = 'minute' | 'hour' | 'day';

const RANGES: Record<Exclude<RangeName, 'custom'>, { label: string; span: number; bucket: Bucket }> = {
  hour: { label: 'Last hour', span: 3_600_000, bucket: 'minute' },
  day: { label: 'Last day', span: 86_400_000, bucket: 'hour' },
  week: { label: 'Last week', span: 7 * 86_400_000, bucket: 'hour' },
};

// the most categories whose latency is read one by one for the table
const CATEGORY_ROWS = 20;

/** A bucket that gives a readable number of points for the span (and stays within the API's limits). */
function bucketFor(span: number): Bucket {
  if (span <= 3 * 3_600_000) return 'minute';
  if (span <= 60 * 86_400_000) return 'hour';
  return 'day';
}

interface Window {
  from: string;
  to: string;
  bucket: Bucket;
}

function windowOf(range: RangeName, params: URLSearchParams): Window | null {
  if (range === 'custom') {
    const from = params.get('from');
    const to = params.get('to');
    if (!from || !to || Date.parse(from) > Date.parse(to)) return null;
    return { from, to, bucket: bucketFor(Date.parse(to) - Date.parse(from)) };
  }
  const { span, bucket } = RANGES[range];
  const now = Date.now();
  return { from: new Date(now - span).toISOString(), to: new Date(now).toISOString(), bucket };
}

interface OverviewData {
  summary: Summary;
  series: Timeseries['series'];
  latency: LatencySeries['series'];
  health: Health;
  p95: Record<string, number | null>;
}

async function loadOverview(range: RangeName, params: URLSearchParams): Promise<OverviewData | null> {
  const w = windowOf(range, params);
  if (!w) return null;
  const dates = { date_from: w.from, date_to: w.to };
  const [summary, series, latency, health] = await Promise.all([
    getJson<Summary>(`/reports/summary${query(dates)}`),
    getJson<Timeseries>(`/reports/timeseries${query({ ...dates, bucket: w.bucket })}`),
    getJson<LatencySeries>(`/reports/latency${query({ ...dates, bucket: w.bucket })}`),
    getJson<Health>('/health', [503]),
  ]);
  const busiest = [...summary.by_category].sort((a, b) => b.count - a.count).slice(0, CATEGORY_ROWS);
  const perCategory = await Promise.all(
    busiest.map((c) => getJson<Summary>(`/reports/summary${query({ ...dates, category: c.category })}`)),
  );
  const p95 = Object.fromEntries(busiest.map((c, i) => [c.category, perCategory[i]!.latency_ms.p95]));
  return { summary, series: series.series, latency: latency.series, health, p95 };
}

const seconds = (iso: string) => Date.parse(iso) / 1000;

export function Overview({ route }: { route: Route }) {
  const range = (route.params.get('range') as RangeName | null) ?? 'hour';
  const valid = range in RANGES || range === 'custom' ? range : 'hour';
  const key = `${valid}|${route.params.get('from')}|${route.params.get('to')}`;
  const { data, error } = usePoll(() => loadOverview(valid, route.params), key);

  const choose = (name: RangeName) => {
    if (name !== 'custom') return navigate('/', { range: name });
    const to = new Date();
    const from = new Date(to.getTime() - 86_400_000);
    navigate('/', { range: name, from: from.toISOString(), to: to.toISOString() });
  };
  const onCustom = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    navigate('/', {
      range: 'custom',
      from: fromLocalInput(String(form.get('from'))),
      to: fromLocalInput(String(form.get('to'))),
    });
  };

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div class="toolbar" role="group" aria-label="Time range">
        {(Object.keys(RANGES) as Array<keyof typeof RANGES>).map((name) => (
          <button type="button" aria-pressed={valid === name} onClick={() => choose(name)}>
            {RANGES[name].label}
          </button>
        ))}
        <button type="button" aria-pressed={valid === 'custom'} onClick={() => choose('custom')}>
          Custom range
        </button>
      </div>
      {valid === 'custom' && (
        <form class="filters" onSubmit={onCustom} key={key}>
          <DateRangeFields form="range" from={route.params.get('from')} to={route.params.get('to')} />
          <button type="submit">Show range</button>
        </form>
      )}
      {error && (
        <p class="error" role="alert">
          Could not read the reports: {error}
        </p>
      )}
      {windowOf(valid, route.params) === null ? (
        <p>Choose a From and a To (From before To) and show the range.</p>
      ) : (
        data === null && !error && <p>Loading…</p>
      )}
      {data && <OverviewBody data={data} />}
    </section>
  );
}

function OverviewBody({ data }: { data: OverviewData }) {
  const { totals, by_category: categories, latency_ms: latency } = data.summary;
  const finished = totals.processed + totals.failed;
  const xs = data.series.map((p) => seconds(p.t));
  const created = data.series.reduce((n, p) => n + p.created, 0);
  const queue = data.health.queue;
  return (
    <>
      <h2>Records in this range</h2>
      <dl class="tiles" aria-label="Totals by status">
        <div>
          <dt>All</dt>
          <dd data-total="all">{number(totals.all)}</dd>
        </div>
        <div>
          <dt>Pending</dt>
          <dd data-total="pending">{number(totals.pending)}</dd>
        </div>
        <div>
          <dt>Processed</dt>
          <dd data-total="processed">{number(totals.processed)}</dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd data-total="failed">{number(totals.failed)}</dd>
        </div>
        <div>
          <dt>Failure rate</dt>
          <dd data-total="failure-rate">{percent(totals.failed, finished)}</dd>
        </div>
        <div>
          <dt>Latency p50</dt>
          <dd>{ms(latency.p50)}</dd>
        </div>
        <div>
          <dt>Latency p95</dt>
          <dd>{ms(latency.p95)}</dd>
        </div>
        <div>
          <dt>Latency p99</dt>
          <dd>{ms(latency.p99)}</dd>
        </div>
      </dl>
      <h2>Queue</h2>
      <dl class="tiles" aria-label="Queue">
        <div>
          <dt>Waiting</dt>
          <dd data-queue="waiting">{queue.waiting === undefined ? '—' : number(queue.waiting)}</dd>
        </div>
        <div>
          <dt>Active</dt>
          <dd data-queue="active">{queue.active === undefined ? '—' : number(queue.active)}</dd>
        </div>
        <div>
          <dt>Workers connected</dt>
          <dd data-queue="workers">{queue.workers === undefined ? '—' : number(queue.workers)}</dd>
        </div>
      </dl>
      <div class="charts">
        <Chart
          title="Records over time"
          summary={`${number(created)} created, ${number(totals.processed)} processed and ${number(totals.failed)} failed in this range`}
          xs={xs}
          ys={[
            data.series.map((p) => p.created),
            data.series.map((p) => p.processed),
            data.series.map((p) => p.failed),
          ]}
          series={[
            { label: 'Created', stroke: '#1f5fa8' },
            { label: 'Processed', stroke: '#1d7a3a', dash: [8, 4] },
            { label: 'Failed', stroke: '#b3261e', dash: [2, 3] },
          ]}
          unit="records"
        />
        <Chart
          title="Latency over time"
          summary={`p50 ${ms(latency.p50)}, p95 ${ms(latency.p95)}, p99 ${ms(latency.p99)} over this range`}
          xs={data.latency.map((p) => seconds(p.t))}
          ys={[data.latency.map((p) => p.p50), data.latency.map((p) => p.p95), data.latency.map((p) => p.p99)]}
          series={[
            { label: 'p50', stroke: '#1f5fa8' },
            { label: 'p95', stroke: '#8a4b00', dash: [8, 4] },
            { label: 'p99', stroke: '#6b2c91', dash: [2, 3] },
          ]}
          unit="ms"
          points
        />
      </div>
      <h2>By category</h2>
      <div class="scroll" tabIndex={0} role="region" aria-label="Records by category">
        <table>
          <thead>
            <tr>
              <th scope="col">Category</th>
              <th scope="col">Pending</th>
              <th scope="col">Processed</th>
              <th scope="col">Failed</th>
              <th scope="col">Failure rate</th>
              <th scope="col">p95</th>
            </tr>
          </thead>
          <tbody>
            {categories.length === 0 && (
              <tr>
                <td colSpan={6}>No records in this range.</td>
              </tr>
            )}
            {categories.map((c) => (
              <tr key={c.category}>
                <th scope="row">
                  <a href={href('/records', { category: c.category })}>{c.category}</a>
                </th>
                <td>{number(c.pending)}</td>
                <td>{number(c.processed)}</td>
                <td>
                  <a href={href('/records', { category: c.category, status: 'failed' })}>
                    {number(c.failed)}
                    <span class="visually-hidden"> failed records of {c.category}</span>
                  </a>
                </td>
                <td>{percent(c.failed, c.processed + c.failed)}</td>
                <td>{c.category in data.p95 ? ms(data.p95[c.category]) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {data.summary.category_count > categories.length && (
        <p>{number(data.summary.category_count - categories.length)} more categories are not listed.</p>
      )}
    </>
  );
}
