export interface SseEvent {
  id: number;
  event: string;
  data: Record<string, unknown>;
}

export interface SseStream {
  status: number;
  headers: Headers;
  events: SseEvent[];
  /** comment lines (`: …`) seen so far */
  comments: string[];
  /** resolves once `count` events arrived (or rejects after timeoutMs) */
  waitFor(count: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** resolves when the server ends the stream */
  ended: Promise<void>;
  close(): void;
}

/** A minimal text/event-stream client over fetch, keeping what it reads. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let buffer = '';
  const parse = () => {
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments.push(line.slice(1).trim());
        else {
          const colon = line.indexOf(':');
          fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
        }
      }
      if (fields.id !== undefined && fields.data !== undefined) {
        events.push({ id: Number(fields.id), event: fields.event ?? 'message', data: JSON.parse(fields.data) });
      }
    }
  };
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        parse();
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    comments,
    ended,
    async waitFor(count, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (events.length < count) {
        if (Date.now() > deadline) throw new Error(`${events.length} of ${count} events after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return events;
    },
    close: () => controller.abort(),
  };
}
