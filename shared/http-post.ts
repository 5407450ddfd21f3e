/**
 * One JSON POST to a URL someone configured (an HTTP processor, a webhook receiver),
 * with the limits such a call needs: a timeout, no redirects followed (a 3xx is an
 * answer like any other), and a cap on how much of the answer is read. Connections are
 * reused through Node's fetch (undici's keep-alive pool).
 */
export interface PostOptions {
  headers: Record<string, string>;
  timeoutMs: number;
  /** read at most this many bytes of the answer; past it, `tooLarge` and the rest is dropped */
  maxResponseBytes: number;
  /** aborts the call from outside (shutdown) */
  signal?: AbortSignal;
}

export interface PostAnswer {
  status: number;
  headers: Headers;
  /** the answer's first bytes, at most `maxResponseBytes` */
  body: Buffer;
  tooLarge: boolean;
}

/** Why a call got no answer: it took longer than the timeout, or it was aborted, or the connection failed. */
export class PostFailure extends Error {
  constructor(
    readonly kind: 'timeout' | 'aborted' | 'connection',
    message: string,
  ) {
    super(message);
    this.name = 'PostFailure';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export async function postJson(url: string, body: string, opts: PostOptions): Promise<PostAnswer> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const failure = (err: unknown): PostFailure => {
    if (timeout.aborted) return new PostFailure('timeout', `no answer within ${opts.timeoutMs} ms`);
    if (opts.signal?.aborted) return new PostFailure('aborted', 'the call was aborted');
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return new PostFailure('connection', cause?.code ?? cause?.message ?? (err as Error).message);
  };
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...opts.headers },
      body,
      redirect: 'manual',
      signal,
    });
  } catch (err) {
    throw failure(err);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  try {
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (size + value.byteLength > opts.maxResponseBytes) {
          tooLarge = true;
          chunks.push(Buffer.from(value.subarray(0, opts.maxResponseBytes - size)));
          await reader.cancel();
          break;
        }
        size += value.byteLength;
        chunks.push(Buffer.from(value));
      }
    }
  } catch (err) {
    throw failure(err);
  }
  return { status: res.status, headers: res.headers, body: Buffer.concat(chunks), tooLarge };
}
