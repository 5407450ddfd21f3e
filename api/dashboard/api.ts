/** The page's calls to the API: reads are public; actions send the key the operator gave, as a header. */

const KEY_STORE = 'workflow-service.api-key';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Set by the server on the page when API_KEYS is set: actions then need a key. */
export const keysRequired = document.documentElement.dataset.keysRequired === 'true';

export const storedKey = (): string | null => sessionStorage.getItem(KEY_STORE);
export const forgetKey = (): void => sessionStorage.removeItem(KEY_STORE);

type KeyPrompt = (reason: string) => Promise<string | null>;
let promptForKey: KeyPrompt | null = null;
const keyListeners = new Set<() => void>();

/** The key dialog registers itself here; a change of key is announced to the listeners. */
export function setKeyPrompt(prompt: KeyPrompt): void {
  promptForKey = prompt;
}
export function onKeyChange(listener: () => void): () => void {
  keyListeners.add(listener);
  return () => keyListeners.delete(listener);
}
function saveKey(key: string | null): void {
  if (key === null) forgetKey();
  else sessionStorage.setItem(KEY_STORE, key);
  keyListeners.forEach((l) => l());
}
export const clearKey = (): void => saveKey(null);

async function errorOf(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(res.status, body.error?.code ?? 'ERROR', body.error?.message ?? res.statusText);
  } catch {
    return new ApiError(res.status, 'ERROR', res.statusText);
  }
}

/** GET a JSON answer; `acceptStatus` lists error statuses whose body is still the answer (the health check's 503). */
export async function getJson<T>(path: string, acceptStatus: number[] = []): Promise<T> {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!res.ok && !acceptStatus.includes(res.status)) throw await errorOf(res);
  return (await res.json()) as T;
}

/** An action (POST): asks for a key first when one is needed and none is kept, and again when it is refused. */
export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    let key = storedKey();
    if (keysRequired && key === null) {
      key = (await promptForKey?.('This action needs an API key.')) ?? null;
      if (key === null) throw new ApiError(401, 'UNAUTHORIZED', 'no API key given');
      saveKey(key);
    }
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (key !== null) headers['X-API-Key'] = key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method: 'POST',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && attempt < 2) {
      saveKey(null);
      const again = await promptForKey?.('That API key was refused: enter another.');
      if (!again) throw await errorOf(res);
      saveKey(again);
      continue;
    }
    if (!res.ok) throw await errorOf(res);
    return (await res.json()) as T;
  }
}

/** A query string of the set values only. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const text = q.toString();
  return text ? `?${text}` : '';
}
