import { useEffect, useRef, useState } from 'preact/hooks';
import { clearKey, keysRequired, onKeyChange, setKeyPrompt, storedKey } from './api.js';

/**
 * Asks for an API key when an action needs one. The key is kept in sessionStorage (it
 * ends with the tab) and sent as the X-API-Key header, never in a URL.
 */
export function KeyDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const answer = useRef<((key: string | null) => void) | null>(null);
  const [reason, setReason] = useState('');
  const [hasKey, setHasKey] = useState(storedKey() !== null);

  useEffect(() => {
    setKeyPrompt(
      (why) =>
        new Promise((resolve) => {
          answer.current = resolve;
          setReason(why);
          dialog.current?.showModal();
        }),
    );
    return onKeyChange(() => setHasKey(storedKey() !== null));
  }, []);

  const finish = (key: string | null) => {
    answer.current?.(key);
    answer.current = null;
  };
  const submit = (e: Event) => {
    e.preventDefault();
    const key = String(new FormData(e.currentTarget as HTMLFormElement).get('key') ?? '').trim();
    dialog.current?.close();
    finish(key || null);
  };

  return (
    <>
      {keysRequired && (
        <p class="key-state">
          {hasKey ? 'API key set for this tab.' : 'Actions ask for an API key.'}{' '}
          {hasKey && (
            <button type="button" onClick={clearKey}>
              Forget key
            </button>
          )}
        </p>
      )}
      <dialog ref={dialog} aria-labelledby="key-title" onClose={() => finish(null)}>
        <form onSubmit={submit}>
          <h2 id="key-title">Key for actions</h2>
          <p>{reason}</p>
          <label>
            API key
            <input type="password" name="key" autoComplete="off" required />
          </label>
          <div class="toolbar">
            <button type="submit">Use key</button>
            <button type="button" onClick={() => dialog.current?.close()}>
              Cancel
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
