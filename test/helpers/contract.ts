import { expect } from 'chai';
import { ERROR_CATALOGUE, type ErrorCode } from '../../shared/index.js';

export interface HttpAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/**
 * What is wrong with an error answer, measured against the contract: the body is
 * exactly `{error: {code, message, details?}, request_id}`, the code is in the
 * catalogue with this status, and `request_id` equals the X-Request-ID header.
 * Null when it is right.
 */
export function contractErrorProblem(res: HttpAnswer): string | null {
  const body = res.body as { error?: Record<string, unknown>; request_id?: unknown } | null;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'body is not an object';
  const keys = Object.keys(body).sort().join(',');
  if (keys !== 'error,request_id') return `body has keys ${keys}`;
  const { error } = body;
  if (!error || typeof error !== 'object') return 'error is not an object';
  const errorKeys = Object.keys(error).filter((k) => !['code', 'message', 'details'].includes(k));
  if (errorKeys.length > 0) return `error has extra keys ${errorKeys.join(',')}`;
  const entry = ERROR_CATALOGUE[error.code as ErrorCode] as { status: number } | undefined;
  if (!entry) return `unknown code ${String(error.code)}`;
  if (entry.status !== res.status) return `code ${String(error.code)} with status ${res.status}`;
  if (typeof error.message !== 'string' || error.message === '') return 'message is not a non-empty string';
  if (typeof body.request_id !== 'string' || body.request_id !== res.headers['x-request-id']) {
    return 'request_id does not match X-Request-ID';
  }
  return null;
}

/** Asserts an error answer: this status and code, in the contract's shape. */
export function expectContractError(res: HttpAnswer, status: number, code: ErrorCode): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(status);
  expect((res.body as { error: { code: string } }).error.code).to.equal(code);
  expect(contractErrorProblem(res)).to.equal(null);
}
