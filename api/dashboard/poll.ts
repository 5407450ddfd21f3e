import { useEffect, useRef, useState } from 'preact/hooks';

export const POLL_MS = 5000;
/** the least time between two reads the stream asks for: a burst of events is one read */
export const COALESCE_MS = 250;
/** how long a stream the server closed (a 404, a 503) is left closed before it is opened again */
const REOPEN_MS = 30_000;
const EVENTS = ['record.created', 'record.processed', 'record.failed', 'record.retried'];

/** What `GET /events` says of a change, as far as the page needs it. */
export interface RecordEvent {
  record_id: string;
}

/** `null`: the stream (re)opened, so anything may have changed while it was down. */
type Listener = (event: RecordEvent | null) => void;

const listeners = new Set<Listener>();
let stream: EventSource | null = null;

/** One `GET /events` for the tab, opened when a view first listens; EventSource reconnects by itself. */
function openStream(): void {
  const source = new EventSource('/events');
  stream = source;
  const tell = (event: RecordEvent | null) => listeners.forEach((l) => l(event));
  source.onopen = () => tell(null);
  for (const name of EVENTS) {
    source.addEventListener(name, (e) => tell(JSON.parse((e as MessageEvent<string>).data) as RecordEvent));
  }
  source.onerror = () => {
    // a network error reconnects by itself; an answer that is not a stream closes it for good
    if (source.readyState !== EventSource.CLOSED) return;
    stream = null;
    setTimeout(openStream, REOPEN_MS);
  };
}

function listen(listener: Listener): () => void {
  if (!stream && typeof EventSource === 'function') openStream();
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const streamLive = () => stream !== null && stream.readyState === EventSource.OPEN;

export interface Polled<T> {
  data: T | null;
  error: string | null;
  /** reads again now (after an action) */
  refresh(): void;
}

/**
 * Reads `load` when `key` changes, then again when the event stream tells of a change
 * that `concerns` the view (at most every 250 ms, one read at a time), and every 5 s
 * while the stream is down; never while the page is hidden. The answer replaces the data
 * in place: forms, focus, scroll position and the page stay.
 */
export function usePoll<T>(
  load: () => Promise<T>,
  key: string,
  concerns: (event: RecordEvent) => boolean = () => true,
): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const latest = useRef({ load, concerns });
  latest.current = { load, concerns };
  const shownKey = useRef(key);

  useEffect(() => {
    let live = true;
    let reading = false;
    let again = false;
    let soon: ReturnType<typeof setTimeout> | undefined;
    if (shownKey.current !== key) {
      // another query: what is shown belonged to the old one
      shownKey.current = key;
      setData(null);
    }
    const read = () => {
      if (document.hidden || !live) return;
      // one read at a time, so a slow answer is never overtaken by an older one
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      latest.current
        .load()
        .then(
          (value) => {
            if (!live) return;
            setData(value);
            setError(null);
          },
          (err: Error) => live && setError(err.message),
        )
        .finally(() => {
          reading = false;
          if (!again) return;
          again = false;
          read();
        });
    };
    read();
    const stop = listen((event) => {
      if (soon !== undefined || (event && !latest.current.concerns(event))) return;
      soon = setTimeout(() => {
        soon = undefined;
        read();
      }, COALESCE_MS);
    });
    const timer = setInterval(() => {
      if (!streamLive()) read();
    }, POLL_MS);
    document.addEventListener('visibilitychange', read);
    return () => {
      live = false;
      stop();
      clearTimeout(soon);
      clearInterval(timer);
      document.removeEventListener('visibilitychange', read);
    };
  }, [key, tick]);

  return { data, error, refresh: () => setTick((t) => t + 1) };
}
