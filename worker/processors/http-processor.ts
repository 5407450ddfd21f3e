import { UnrecoverableError } from 'bullmq';
import { postJson, PostFailure, webhookHeaders, type JsonObject, type PostAnswer } from '../../shared/index.js';
import { RetryLaterError } from './processor-errors.js';
import type { Processor } from './types.js';

/** The largest answer read; a bigger one is refused (and retried, as any answer that is not a result). */
export const MAX_ANSWER_BYTES = 256 * 1024;
/** The longest Retry-After honoured; a longer one waits this long. */
export const MAX_RETRY_AFTER_MS = 60_000;
/** 4xx answers that say "not now" rather than "never". */
const RETRIED_4XX = new Set([408, 409, 425, 429]);

export type AnswerOutcome =
  | { outcome: 'processed'; result: JsonObject }
  | { outcome: 'failed'; error: string }
  | { outcome: 'retry'; error: string; retryAfterMs: number | null };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The body's own word on the failure: its `error` (a string) or `message`. */
function bodyError(body: Buffer): string | null {
  const parsed = parseJson(body);
  if (!isObject(parsed)) return null;
  if (typeof parsed.error === 'string' && parsed.error !== '') return parsed.error;
  if (typeof parsed.message === 'string' && parsed.message !== '') return parsed.message;
  return null;
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from `now`, at most a minute; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const text = value.trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  if (!Number.isFinite(ms)) return null;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** What an HTTP processor's answer means for the record: the contract's table. */
export function classifyAnswer(answer: PostAnswer): AnswerOutcome {
  const { status, body } = answer;
  if (status >= 200 && status < 300) {
    if (answer.tooLarge) {
      return {
        outcome: 'retry',
        error: `HTTP ${status}: answer larger than ${MAX_ANSWER_BYTES} bytes`,
        retryAfterMs: null,
      };
    }
    const parsed = parseJson(body);
    if (isObject(parsed)) return { outcome: 'processed', result: parsed };
    return { outcome: 'retry', error: `HTTP ${status}: answer is not a JSON object`, retryAfterMs: null };
  }
  const own = bodyError(body);
  if (status >= 500 || RETRIED_4XX.has(status)) {
    return {
      outcome: 'retry',
      error: own ? `HTTP ${status}: ${own}` : `HTTP ${status}`,
      retryAfterMs: retryAfterMs(answer.headers.get('retry-after')),
    };
  }
  if (status >= 400) return { outcome: 'failed', error: own ?? `HTTP ${status}` };
  // redirects are not followed: a URL that answers one is a configuration to fix, not a moment to wait out
  return { outcome: 'failed', error: `HTTP ${status}: not a result (redirects are not followed)` };
}

/**
 * POSTs the record to `url`, signed the Standard Webhooks way when a secret is set, and
 * turns the answer into a result or an error of the right kind.
 */
export function createHttpProcessor(url: string, secret: string | null, timeoutMs: number): Processor {
  return async (record, ctx) => {
    const body = JSON.stringify({
      record: {
        id: record.id,
        source: record.source,
        category: record.category,
        payload: record.payload,
        attempts: record.attempts,
        created_at: record.created_at,
      },
      attempt: ctx.attempt,
    });
    const headers: Record<string, string> = secret === null ? {} : webhookHeaders(secret, ctx.jobId, body);
    if (ctx.requestId) headers['x-request-id'] = ctx.requestId;
    let answer: PostAnswer;
    try {
      answer = await postJson(url, body, {
        headers,
        timeoutMs,
        maxResponseBytes: MAX_ANSWER_BYTES,
        signal: ctx.signal,
      });
    } catch (err) {
      if (err instanceof PostFailure) {
        throw new RetryLaterError(err.kind === 'connection' ? `connection failed: ${err.message}` : err.message, null);
      }
      throw err;
    }
    const outcome = classifyAnswer(answer);
    if (outcome.outcome === 'processed') return outcome.result;
    if (outcome.outcome === 'failed') throw new UnrecoverableError(outcome.error);
    throw new RetryLaterError(outcome.error, outcome.retryAfterMs);
  };
}
