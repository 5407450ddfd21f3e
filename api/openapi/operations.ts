import Joi from 'joi';
import {
  BATCH_MAX_RECORDS,
  batchInputSchema,
  batchSchema,
  bulkRetrySchema,
  failuresQuerySchema,
  failuresReportSchema,
  categoriesSchema,
  healthSchema,
  historySchema,
  latencyQuerySchema,
  latencySeriesSchema,
  listQuerySchema,
  livenessSchema,
  processQuerySchema,
  recordIdSchema,
  recordInputSchema,
  recordSchema,
  recordsPageSchema,
  retryByFilterSchema,
  summaryQuerySchema,
  summarySchema,
  timeseriesQuerySchema,
  timeseriesSchema,
  versionSchema,
  type ErrorCode,
} from '../../shared/index.js';
import { WEBHOOK_OPERATIONS } from './webhook-operations.js';

/**
 * Every endpoint of the API, described once. The request schemas are the very Joi
 * schemas the routes validate with; the response schemas are their Joi counterparts
 * in shared/response-schemas.ts. The OpenAPI document is generated from this table.
 */

/** Response headers the API sends, described once under `components.headers`. */
export type HeaderName =
  'X-Request-ID' | 'Location' | 'Idempotent-Replayed' | 'Preference-Applied' | 'WWW-Authenticate' | 'Retry-After';

export interface ResponseSpec {
  description: string;
  /** JSON body; absent with `contentType` for a non-JSON answer, and with neither for no body (204) */
  schema?: Joi.Schema;
  contentType?: 'text/html' | 'text/plain' | 'text/event-stream';
  /** also answered as RFC 4180 CSV (`text/csv`) for `?format=csv` or `Accept: text/csv` */
  csv?: boolean;
  /** headers sent with this answer besides X-Request-ID (always sent) */
  headers?: HeaderName[];
}

export interface ParameterSpec {
  schema: Joi.Schema;
  description: string;
  required?: boolean;
}

export type Access =
  /** anyone */
  | 'public'
  /** a write: a key when API_KEYS is set, rate limited when RATE_LIMIT_PER_MINUTE is set, a JSON body if any */
  | 'write'
  /** under /admin: a key for every method when API_KEYS is set */
  | 'admin'
  /** a read that needs a key when API_KEYS is set (the /webhooks reads: they show URLs) */
  | 'keyed';

export interface OperationSpec {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI path template, `{name}` for parameters */
  path: string;
  operationId: string;
  tag: 'records' | 'reports' | 'webhooks' | 'operations';
  summary: string;
  description?: string;
  access: Access;
  pathParams?: Record<string, ParameterSpec>;
  /** a Joi object schema; each key is one query parameter */
  query?: Joi.ObjectSchema;
  headers?: Record<string, ParameterSpec>;
  body?: Joi.Schema;
  responses: Record<number, ResponseSpec>;
  /** errors of this endpoint's own; those of its access level are added (see `accessErrors`) */
  errors?: ErrorCode[];
}

/** Errors every operation of an access level can answer, besides its own. */
export const ACCESS_ERRORS: Record<Access, ErrorCode[]> = {
  public: [],
  write: ['MALFORMED_JSON', 'UNAUTHORIZED', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'RATE_LIMITED'],
  admin: ['UNAUTHORIZED', 'RATE_LIMITED'],
  keyed: ['UNAUTHORIZED', 'RATE_LIMITED'],
};

/** What a code means on an operation's response, beyond the catalogue's message. */
export const ERROR_NOTES: Partial<Record<ErrorCode, string>> = {
  MALFORMED_JSON: 'the body does not parse as JSON (or does not inflate)',
  UNAUTHORIZED: 'API_KEYS is set and no valid key was sent (`X-API-Key` or `Authorization: Bearer`)',
  PAYLOAD_TOO_LARGE: 'the body is larger than BODY_LIMIT (also once inflated)',
  UNSUPPORTED_MEDIA_TYPE: 'a body that is not `application/json` (or `…+json`), or an unknown Content-Encoding',
  RATE_LIMITED:
    'RATE_LIMIT_PER_MINUTE is set and this key (or client address) wrote more in the current minute, or this client address sent more than AUTH_FAILURES_PER_MINUTE wrong keys in a minute',
  RECORD_NOT_FOUND: 'no record has this id (a malformed id included)',
  WEBHOOK_NOT_FOUND: 'no webhook subscription has this id (a malformed id included)',
  DELIVERY_NOT_FOUND: 'this subscription has no delivery with this id (a malformed id included)',
  VALIDATION_ERROR: '`details` has one entry per problem',
  IDEMPOTENCY_KEY_REUSED: 'this Idempotency-Key came before with another request',
  UNKNOWN_CATEGORY: 'the categories file says `unknown_categories: reject` and does not list this category',
  ALREADY_PROCESSED: 'the record is processed or failed (`record is not pending`)',
  ALREADY_QUEUED: 'the record is pending and already queued',
  NOT_FAILED: 'only a failed record can be retried',
  INTERNAL_ERROR: 'an unexpected failure; the body never carries internals, the log has them',
  SERVICE_UNAVAILABLE:
    'the database or Redis cannot be reached (during a Redis failover, for one), or EVENTS_MAX_STREAMS streams are open; retry after the `Retry-After` seconds',
  NOT_FOUND: 'no route has this path',
  METHOD_NOT_ALLOWED: 'the path exists but not with this method (the `Allow` header lists those it has)',
};

const idempotencyKey: Record<string, ParameterSpec> = {
  'Idempotency-Key': {
    schema: Joi.string().min(1).max(255),
    description: 'makes retries safe: the same key and request get the first response',
  },
};

const recordId: Record<string, ParameterSpec> = {
  id: { schema: recordIdSchema, description: 'the record id (UUID)', required: true },
};

const record = (description: string, headers?: HeaderName[]): ResponseSpec => ({
  description,
  schema: recordSchema,
  headers,
});

export const OPERATIONS: readonly OperationSpec[] = [
  {
    method: 'post',
    path: '/records',
    operationId: 'createRecord',
    tag: 'records',
    summary: 'Store a record (and optionally queue it)',
    description:
      'Stores a pending record. With `?process=true` the intent to process it is committed with it and a job is ' +
      'queued after the commit. With an `Idempotency-Key`, a repeat of the same request within 24 h answers the ' +
      'first response again (`Idempotent-Replayed: true`) and stores nothing.',
    access: 'write',
    query: processQuerySchema,
    headers: idempotencyKey,
    body: recordInputSchema,
    responses: {
      201: record('stored (or, with `Idempotent-Replayed: true`, the first response to this key)', [
        'Location',
        'Idempotent-Replayed',
      ]),
    },
    errors: ['VALIDATION_ERROR', 'IDEMPOTENCY_KEY_REUSED', 'UNKNOWN_CATEGORY'],
  },
  {
    method: 'post',
    path: '/records/batch',
    operationId: 'createRecords',
    tag: 'records',
    summary: `Store 1-${BATCH_MAX_RECORDS} records in one request, all or none`,
    description:
      'One transaction: when any record is invalid the answer is 422 with one detail per problem, its `field` ' +
      'naming the index (`body.records.3.source`), and nothing is stored. With `?process=true` every record is ' +
      'queued. An `Idempotency-Key` works as for a single record.',
    access: 'write',
    query: processQuerySchema,
    headers: idempotencyKey,
    body: batchInputSchema,
    responses: {
      201: {
        description: 'all stored (or, with `Idempotent-Replayed: true`, the first response to this key)',
        schema: batchSchema,
        headers: ['Idempotent-Replayed'],
      },
    },
    errors: ['VALIDATION_ERROR', 'IDEMPOTENCY_KEY_REUSED', 'UNKNOWN_CATEGORY'],
  },
  {
    method: 'get',
    path: '/records',
    operationId: 'listRecords',
    tag: 'records',
    summary: 'List records: filters, sort, pages by cursor or offset',
    description:
      'Filters on status, category, source and `created_at` in [`created_after`, `created_before`). Sorted by ' +
      '`sort_by`, then `created_at`, then `id`, all in `sort_order` (default: newest first). Follow `next_cursor` ' +
      '(opaque, bound to the filters and order) for the next page: a page costs the same at any depth, and records ' +
      'inserted meanwhile are neither repeated nor skipped. `offset` (at most 10,000) is the alternative. An ' +
      'edited cursor, or one used with other filters or order, is 422.',
    access: 'public',
    query: listQuerySchema,
    responses: {
      200: {
        description:
          'one page; as CSV, every matching record (columns id, source, category, status, attempts, error, ' +
          'created_at, updated_at, processed_at, payload and result as JSON), streamed',
        schema: recordsPageSchema,
        csv: true,
      },
    },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/records/{id}',
    operationId: 'getRecord',
    tag: 'records',
    summary: 'Read a record',
    access: 'public',
    pathParams: recordId,
    responses: { 200: record('the record') },
    errors: ['RECORD_NOT_FOUND'],
  },
  {
    method: 'get',
    path: '/records/{id}/history',
    operationId: 'getRecordHistory',
    tag: 'records',
    summary: "A record's transitions",
    description: 'Every state change of the record, its creation first, with the request and job that caused it.',
    access: 'public',
    pathParams: recordId,
    responses: { 200: { description: 'the transitions, oldest first', schema: historySchema } },
    errors: ['RECORD_NOT_FOUND'],
  },
  {
    method: 'post',
    path: '/records/{id}/process',
    operationId: 'processRecord',
    tag: 'records',
    summary: 'Queue a pending record for processing',
    description:
      'Of any number of concurrent calls for one record exactly one is accepted. With `Prefer: wait=N` ' +
      '(N ≤ 30 seconds) the answer waits for the outcome: 200 with the final record if it was reached in time.',
    access: 'write',
    pathParams: recordId,
    headers: {
      Prefer: {
        schema: Joi.string().pattern(/^wait=\d+$/),
        description: '`wait=N`: wait up to N seconds (at most 30) for a terminal state',
      },
    },
    responses: {
      200: record('processed or failed within the wait asked for', ['Location', 'Preference-Applied']),
      202: record('accepted and queued; the record as it is now', ['Location', 'Preference-Applied']),
    },
    errors: ['RECORD_NOT_FOUND', 'ALREADY_PROCESSED', 'ALREADY_QUEUED'],
  },
  {
    method: 'post',
    path: '/records/{id}/retry',
    operationId: 'retryRecord',
    tag: 'records',
    summary: 'Send a failed record round again (operator action)',
    description: 'Moves a failed record back to pending and queues it.',
    access: 'write',
    pathParams: recordId,
    responses: { 202: record('pending again and queued', ['Location']) },
    errors: ['RECORD_NOT_FOUND', 'NOT_FAILED'],
  },
  {
    method: 'post',
    path: '/records/retry',
    operationId: 'retryRecords',
    tag: 'records',
    summary: 'Send every failed record matching a filter round again (operator action)',
    description:
      'Up to `limit` failed records matching `filter` (the oldest first) go back to pending and are queued, each ' +
      'by the same guarded statement as the single retry: one retried meanwhile by someone else is skipped. ' +
      "Each retry's history row names the key that asked (`actor`: its fingerprint).",
    access: 'write',
    body: retryByFilterSchema,
    responses: { 202: { description: 'how many were retried', schema: bulkRetrySchema } },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/reports/summary',
    operationId: 'getSummary',
    tag: 'reports',
    summary: 'Totals and per-category counts by status, and processing latency percentiles',
    description:
      'Every filter is optional; `date_from` must not be after `date_to`. A repeated parameter is 422. Read from ' +
      'counters kept with every write, so its cost does not grow with the number of records.',
    access: 'public',
    query: summaryQuerySchema,
    responses: {
      200: {
        description:
          'the summary; as CSV, columns category, count, pending, processed, failed: the totals first, under an ' +
          'empty category, then one row per category',
        schema: summarySchema,
        csv: true,
      },
    },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/reports/timeseries',
    operationId: 'getTimeseries',
    tag: 'reports',
    summary: 'Records created, processed and failed per minute, hour or day (UTC)',
    description:
      'The series covers every bucket from the one holding `date_from` to the one holding `date_to` (without ' +
      'them, the hours holding matching records), each bucket counted whole. `created` counts records by ' +
      '`created_at`; `processed` and `failed` count records now in that status by `processed_at`. At most 1,440 ' +
      'minute, 2,160 hour or 3,660 day buckets; more is 422.',
    access: 'public',
    query: timeseriesQuerySchema,
    responses: {
      200: {
        description: 'the series; as CSV, columns t, created, processed, failed',
        schema: timeseriesSchema,
        csv: true,
      },
    },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/reports/latency',
    operationId: 'getLatencySeries',
    tag: 'reports',
    summary: 'Processing latency p50, p95 and p99 per minute, hour or day of creation (UTC)',
    description:
      'The buckets as in `/reports/timeseries`. Each bucket holds the records created in it that are now processed ' +
      'or failed. Hours and days add up the histograms kept with the report counters; minutes read the records.',
    access: 'public',
    query: latencyQuerySchema,
    responses: { 200: { description: 'the series', schema: latencySeriesSchema } },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/reports/failures',
    operationId: 'getFailures',
    tag: 'reports',
    summary: 'Failed records grouped by their error, with counts and when each was first and last seen',
    description:
      'The filter is the one `POST /records/retry` takes, so a group or a filter is retried as it is counted ' +
      'here. Read through the status index: its cost follows the number of failed records matched.',
    access: 'public',
    query: failuresQuerySchema,
    responses: { 200: { description: 'the groups', schema: failuresReportSchema } },
    errors: ['VALIDATION_ERROR'],
  },
  {
    method: 'get',
    path: '/categories',
    operationId: 'listCategories',
    tag: 'records',
    summary: 'The categories the categories file lists: description, payload schema, kind of processor',
    description:
      'Empty without CATEGORIES_FILE (every category is then accepted and processed by the built-in rule). A ' +
      "processor's URL, path and secret are never shown.",
    access: 'public',
    responses: { 200: { description: 'the listed categories, in the order of the file', schema: categoriesSchema } },
  },
  {
    method: 'get',
    path: '/health',
    operationId: 'getHealth',
    tag: 'operations',
    summary: 'Readiness: can the API reach its database and Redis?',
    access: 'public',
    responses: {
      200: { description: 'both reachable', schema: healthSchema },
      503: { description: 'the part that cannot be reached has `status: "error"`', schema: healthSchema },
    },
  },
  {
    method: 'get',
    path: '/health/live',
    operationId: 'getLiveness',
    tag: 'operations',
    summary: 'Liveness: 200 while the process runs',
    access: 'public',
    responses: { 200: { description: 'running', schema: livenessSchema } },
  },
  {
    method: 'get',
    path: '/version',
    operationId: 'getVersion',
    tag: 'operations',
    summary: 'What is running',
    access: 'public',
    responses: { 200: { description: 'version, commit and environment', schema: versionSchema } },
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tag: 'operations',
    summary: 'Prometheus metrics of this API process',
    description:
      'HTTP requests by method, route template and status (`http_requests_total`, ' +
      '`http_request_duration_seconds`), `workflow_records_created_total`, the queue by state ' +
      '(`workflow_queue_jobs`, read on scrape) and Node process metrics. Each worker serves its own on ' +
      'METRICS_PORT.',
    access: 'public',
    responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain' } },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApiDocument',
    tag: 'operations',
    summary: 'This document',
    access: 'public',
    responses: {
      200: {
        description: 'OpenAPI 3.0, generated from the schemas the API validates with',
        schema: Joi.object().unknown(true),
      },
    },
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'getDocs',
    tag: 'operations',
    summary: 'Swagger UI for this document',
    access: 'public',
    responses: {
      200: { description: 'an HTML page; its assets are served by the API itself', contentType: 'text/html' },
    },
  },
  {
    method: 'get',
    path: '/dashboard',
    operationId: 'getDashboard',
    tag: 'operations',
    summary: "The operator's dashboard: overview, records, failures, retries",
    description:
      'A single-page app built by `npm run build` (its script and stylesheet under `/dashboard/`), compressed ' +
      '(brotli or gzip), with a Content-Security-Policy that allows only this origin. Reads are public; when ' +
      'API_KEYS is set the page asks for a key for actions only and sends it as `X-API-Key`. 404 when not built.',
    access: 'public',
    responses: { 200: { description: 'the page', contentType: 'text/html' } },
  },
  {
    method: 'get',
    path: '/admin/queues',
    operationId: 'getQueueBoard',
    tag: 'operations',
    summary: 'Bull Board: the processing queue and its jobs',
    description:
      'An HTML page (and the JSON calls it makes under `/admin/queues/api/`). Needs a key for every method when ' +
      'API_KEYS is set. Read-only unless ADMIN_WRITE=true: then retrying, removing and pausing jobs is allowed; ' +
      'otherwise any other method than GET is 405 `METHOD_NOT_ALLOWED`.',
    access: 'admin',
    responses: { 200: { description: 'the queue UI', contentType: 'text/html' } },
  },
  ...WEBHOOK_OPERATIONS,
];
