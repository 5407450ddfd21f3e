import { useEffect, useRef, useState } from 'preact/hooks';

export const POLL_MS = 5000;

export interface Polled<T> {
  data: T | null;
  error: string | null;
  /** reads again now (after an action) */
  refresh(): void;
}

/**
 * Reads `load` when `key` changes and again every 5 s while the page is visible. The
 * answer replaces the data in place: forms, focus, scroll position and the page stay.
 */
export function usePoll<T>(load: () => Promise<T>, key: string): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  const shownKey = useRef(key);

  useEffect(() => {
    let live = true;
    if (shownKey.current !== key) {
      // another query: what is shown belonged to the old one
      shownKey.current = key;
      setData(null);
    }
    const read = () => {
      if (document.hidden) return;
      latest.current().then(
        (value) => {
          if (!live) return;
          setData(value);
          setError(null);
        },
        (err: Error) => live && setError(err.message),
      );
    };
    read();
    const timer = setInterval(read, POLL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [key, tick]);

  return { data, error, refresh: () => setTick((t) => t + 1) };
}
