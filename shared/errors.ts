/** The error catalogue: every code a client can see, with its HTTP status and default message. */
export const ERROR_CATALOGUE = {
  MALFORMED_JSON: { status: 400, message: 'request body is not valid JSON' },
  UNAUTHORIZED: { status: 401, message: 'a valid API key is required' },
  NOT_FOUND: { status: 404, message: 'route not found' },
  RECORD_NOT_FOUND: { status: 404, message: 'record not found' },
  WEBHOOK_NOT_FOUND: { status: 404, message: 'webhook subscription not found' },
  DELIVERY_NOT_FOUND: { status: 404, message: 'delivery not found' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  ALREADY_PROCESSED: { status: 409, message: 'record is not pending' },
  ALREADY_QUEUED: { status: 409, message: 'record is already queued for processing' },
  NOT_FAILED: { status: 409, message: 'record is not failed' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'request body must be application/json' },
  VALIDATION_ERROR: { status: 422, message: 'request is not valid' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'Idempotency-Key was already used with a different request' },
  UNKNOWN_CATEGORY: { status: 422, message: 'category is not listed in the categories file' },
  RATE_LIMITED: { status: 429, message: 'too many requests' },
  INTERNAL_ERROR: { status: 500, message: 'Internal server error' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorDetail {
  field?: string;
  message: string;
  [key: string]: unknown;
}

/** An error meant for the client: a catalogue code, optionally a more precise message and details. */
export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details?: unknown,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message ?? ERROR_CATALOGUE[code].message);
    this.name = 'AppError';
    this.status = ERROR_CATALOGUE[code].status;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}
