import { useState } from 'preact/hooks';
import { getJson, postJson } from './api.js';
import { when } from './format.js';
import { usePoll } from './poll.js';
import { href } from './router.js';
import { StatusBadge } from './status.js';
import type { Transition, WorkflowRecord } from './types.js';

async function loadRecord(id: string) {
  const [record, history] = await Promise.all([
    getJson<WorkflowRecord>(`/records/${encodeURIComponent(id)}`),
    getJson<{ items: Transition[] }>(`/records/${encodeURIComponent(id)}/history`),
  ]);
  return { record, history: history.items };
}

const json = (value: unknown) => JSON.stringify(value, null, 2);

export function RecordPage({ id }: { id: string }) {
  const { data, error, refresh } = usePoll(
    () => loadRecord(id),
    id,
    (event) => event.record_id === id,
  );
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);

  const retry = async () => {
    setBusy(true);
    try {
      await postJson(`/records/${encodeURIComponent(id)}/retry`);
      setMessage('Retried: the record is pending and queued again.');
    } catch (err) {
      setMessage(`Retry failed: ${(err as Error).message}`);
    } finally {
      setBusy(false);
      refresh();
    }
  };

  return (
    <section aria-labelledby="record-title">
      <p>
        <a href={href('/records')}>← All records</a>
      </p>
      <h1 id="record-title">
        Record <span class="mono">{id}</span>
      </h1>
      <p role="status" class="message">
        {message}
      </p>
      {error && (
        <p class="error" role="alert">
          Could not read the record: {error}
        </p>
      )}
      {data && (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd data-record-status>
              <StatusBadge status={data.record.status} />
            </dd>
            <dt>Category</dt>
            <dd>{data.record.category}</dd>
            <dt>Source</dt>
            <dd>{data.record.source}</dd>
            <dt>Attempts</dt>
            <dd>{data.record.attempts}</dd>
            <dt>Created</dt>
            <dd>{when(data.record.created_at)}</dd>
            <dt>Updated</dt>
            <dd>{when(data.record.updated_at)}</dd>
            <dt>Finished</dt>
            <dd>{when(data.record.processed_at)}</dd>
          </dl>
          {data.record.status === 'failed' && (
            <button type="button" onClick={retry} disabled={busy}>
              Retry
            </button>
          )}
          <h2>Error</h2>
          <pre class="block">{data.record.error ?? 'none'}</pre>
          <h2>Payload</h2>
          <pre class="block">{json(data.record.payload)}</pre>
          <h2>Result</h2>
          <pre class="block">{data.record.result === null ? 'none' : json(data.record.result)}</pre>
          <h2>History</h2>
          <ol class="timeline" aria-label="History, oldest first">
            {data.history.map((t, i) => (
              <li key={i} data-transition={`${t.from ?? 'created'}->${t.to}`}>
                <time dateTime={t.at}>{when(t.at)}</time>{' '}
                <strong>
                  {t.from ?? 'created'} → {t.to}
                </strong>
                {t.attempt > 0 && <span> · attempt {t.attempt}</span>}
                {t.actor && <span> · by key {t.actor}</span>}
                {t.error && <span class="clip"> · {t.error}</span>}
                {t.request_id && <span class="mono small"> · request {t.request_id}</span>}
                {t.job_id && <span class="mono small"> · job {t.job_id}</span>}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
