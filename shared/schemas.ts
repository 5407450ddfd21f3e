import Joi from 'joi';
import { AppError } from './errors.js';
import { RECORD_STATUSES } from './state-machine.js';
import { SORT_FIELDS, type SortField, type SortOrder } from './db/records-listing.js';

/**
 * Joi validates an object through a copy made with Object.assign, which turns an own
 * `__proto__` key (JSON.parse makes one) into a prototype change and so drops it
 * silently (Koa's query object has such keys too). A client's `__proto__` field or
 * query parameter is refused like any other unknown one.
 */
export const StrictJoi: Joi.Root = Joi.extend((joi) => ({
  type: 'object',
  base: joi.object(),
  prepare(value: unknown, helpers: Joi.CustomHelpers) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, '__proto__')) return undefined;
    const { state } = helpers;
    const at = state.localize?.([...(state.path ?? []), '__proto__']);
    const error = helpers.error('object.unknown', { child: '__proto__', label: '__proto__' }, at);
    return { value, errors: [error] };
  },
}));

// control characters and lone surrogates: PostgreSQL refuses NUL in text, and a lone
// surrogate cannot be encoded as UTF-8, so neither can be stored as given
const STORABLE_TEXT = /^[^\p{Cc}\p{Cs}]*$/u;

const name = Joi.string()
  .min(1)
  .max(128)
  .pattern(STORABLE_TEXT, 'storable text')
  // the document's pattern without the regex's flags (joi-to-swagger would keep a trailing "/")
  .meta({ swagger: { pattern: STORABLE_TEXT.source } });

export const PAYLOAD_MAX_DEPTH = 32;
export const PAYLOAD_MAX_KEYS = 1000;

type PayloadProblem = 'payload.depth' | 'payload.keys' | 'payload.proto';

/**
 * Checks nesting depth (the payload itself is level 1), the total number of object keys
 * and `__proto__` keys. Iterative on purpose: JSON.parse accepts a document nested
 * thousands deep, and a recursive walk over it would overflow the call stack.
 */
export function payloadProblem(payload: object): PayloadProblem | null {
  const pending: Array<[unknown, number]> = [[payload, 1]];
  let keys = 0;
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!;
    if (depth > PAYLOAD_MAX_DEPTH) return 'payload.depth';
    const children: unknown[] = Array.isArray(node) ? node : [];
    if (!Array.isArray(node)) {
      const own = Object.keys(node as object);
      keys += own.length;
      if (keys > PAYLOAD_MAX_KEYS) return 'payload.keys';
      // stored as data it would be harmless here, but a consumer that merges the
      // payload into an object (Object.assign, a deep merge) would change its prototype
      if (own.includes('__proto__')) return 'payload.proto';
      for (const key of own) children.push((node as Record<string, unknown>)[key]);
    }
    for (const child of children) if (child !== null && typeof child === 'object') pending.push([child, depth + 1]);
  }
  return null;
}

const payload = Joi.object()
  .unknown(true)
  .custom((value: object, helpers) => {
    const problem = payloadProblem(value);
    return problem ? helpers.error(problem) : value;
  }, 'payload limits');

export const recordInputSchema = StrictJoi.object({
  source: name.required().description('where the record comes from'),
  category: name.required().description('selects the processor; unknown categories get the default one'),
  payload: payload
    .required()
    .description(
      `any JSON object, nested at most ${PAYLOAD_MAX_DEPTH} levels with at most ${PAYLOAD_MAX_KEYS} keys in total`,
    ),
})
  .unknown(false)
  .meta({ className: 'RecordInput' });

export const BATCH_MAX_RECORDS = 1000;

export const batchInputSchema = StrictJoi.object({
  records: Joi.array()
    .items(recordInputSchema)
    .min(1)
    .max(BATCH_MAX_RECORDS)
    .required()
    .description(`1-${BATCH_MAX_RECORDS} records, stored all or none`),
})
  .unknown(false)
  .meta({ className: 'BatchInput' });

export const recordIdSchema = Joi.string().guid({ version: ['uuidv4', 'uuidv7'] });

export const processQuerySchema = StrictJoi.object({
  process: Joi.boolean().truthy('1').falsy('0').default(false).description('also queue for processing'),
}).unknown(false);

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Date.parse rolls 2026-02-31 over into March; a calendar date must round-trip. */
function isCalendarDate(ymd: string): boolean {
  const [y, m, d] = ymd.split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * An ISO 8601 date or date-time, converted to epoch milliseconds.
 * A date alone as an upper bound means the whole of that day (UTC).
 */
function isoBound(kind: 'from' | 'to', description?: string) {
  const meaning =
    description ??
    (kind === 'from'
      ? 'created at or after: an ISO 8601 date (from its start, UTC) or date-time'
      : 'created at or before: an ISO 8601 date (the whole day, UTC) or date-time');
  return Joi.string()
    .description(meaning)
    .custom((value: string, helpers) => {
      if (!DATE_ONLY.test(value) && !DATE_TIME.test(value)) return helpers.error('date.format');
      const ms = Date.parse(DATE_ONLY.test(value) ? `${value}T00:00:00Z` : value);
      if (Number.isNaN(ms) || !isCalendarDate(value.slice(0, 10))) return helpers.error('date.base');
      return kind === 'to' && DATE_ONLY.test(value) ? ms + 86_400_000 - 1 : ms;
    }, 'ISO 8601 date or date-time');
}

const reportFilters = {
  status: Joi.string().valid(...RECORD_STATUSES),
  category: name.description('exact match'),
  source: name.description('exact match'),
  date_from: isoBound('from'),
  date_to: isoBound('to'),
};

function dateOrder(value: { date_from?: number; date_to?: number }, helpers: Joi.CustomHelpers) {
  if (value.date_from !== undefined && value.date_to !== undefined && value.date_from > value.date_to) {
    return helpers.error('range.order', { label: 'date_from' });
  }
  return value;
}

/** `?format=csv` answers RFC 4180 CSV (so does `Accept: text/csv`); `json` is the default. */
export const ANSWER_FORMATS = ['json', 'csv'] as const;
export type AnswerFormat = (typeof ANSWER_FORMATS)[number];
const format = Joi.string()
  .valid(...ANSWER_FORMATS)
  .description('`csv` answers RFC 4180 CSV with a header row, as `Accept: text/csv` does; default JSON');

export const summaryQuerySchema = StrictJoi.object({ ...reportFilters, format })
  .unknown(false)
  .custom(dateOrder);

export interface SummaryFilters {
  status?: (typeof RECORD_STATUSES)[number];
  category?: string;
  source?: string;
  date_from?: number;
  date_to?: number;
  format?: AnswerFormat;
}

export const SERIES_BUCKETS = ['minute', 'hour', 'day'] as const;

const seriesQuery = {
  ...reportFilters,
  bucket: Joi.string()
    .valid(...SERIES_BUCKETS)
    .default('hour')
    .description('bucket width, UTC'),
};

export const timeseriesQuerySchema = StrictJoi.object({ ...seriesQuery, format })
  .unknown(false)
  .custom(dateOrder);

export const latencyQuerySchema = StrictJoi.object(seriesQuery).unknown(false).custom(dateOrder);

// a filter of failed records, shared by the failures report and the bulk retry
const failureFilter = {
  category: name.description('exact match'),
  source: name.description('exact match'),
  error: Joi.string().max(2000).description('the error text, exactly (a group of the failures report)'),
  error_contains: Joi.string().min(1).max(2000).description('part of the error text, case-sensitive'),
  created_after: isoBound('from', 'created at or after: an ISO 8601 date (its midnight, UTC) or date-time'),
  created_before: isoBound('from', 'created before: an ISO 8601 date (its midnight, UTC) or date-time'),
};

function createdOrder(value: { created_after?: number; created_before?: number }, helpers: Joi.CustomHelpers) {
  const { created_after: after, created_before: before } = value;
  if (after !== undefined && before !== undefined && after > before) {
    return helpers.error('range.created', { label: 'created_after' });
  }
  return value;
}

export interface FailureFilterInput {
  category?: string;
  source?: string;
  error?: string;
  error_contains?: string;
  created_after?: number;
  created_before?: number;
}

export const FAILURE_GROUPS_DEFAULT = 50;
export const FAILURE_GROUPS_MAX = 500;

export const failuresQuerySchema = StrictJoi.object({
  ...failureFilter,
  limit: Joi.number()
    .integer()
    .min(1)
    .max(FAILURE_GROUPS_MAX)
    .default(FAILURE_GROUPS_DEFAULT)
    .description(`groups listed, the largest first (${FAILURE_GROUPS_DEFAULT} by default)`),
})
  .unknown(false)
  .custom(createdOrder);

export interface FailuresQuery extends FailureFilterInput {
  limit: number;
}

export const RETRY_LIMIT_DEFAULT = 1000;
export const RETRY_LIMIT_MAX = 10_000;

export const retryByFilterSchema = StrictJoi.object({
  filter: StrictJoi.object(failureFilter)
    .unknown(false)
    .required()
    .custom(createdOrder)
    .description('which failed records: every field optional, all must match'),
  limit: Joi.number()
    .integer()
    .min(1)
    .max(RETRY_LIMIT_MAX)
    .default(RETRY_LIMIT_DEFAULT)
    .description(`at most this many records, the oldest first (${RETRY_LIMIT_DEFAULT} by default)`),
})
  .unknown(false)
  .meta({ className: 'RetryByFilter' });

export interface RetryByFilterInput {
  filter: FailureFilterInput;
  limit: number;
}

export interface TimeseriesQuery extends SummaryFilters {
  bucket: (typeof SERIES_BUCKETS)[number];
}

export type LatencyQuery = Omit<TimeseriesQuery, 'format'>;

export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 200;
export const LIST_OFFSET_MAX = 10_000;
/** The most rows one CSV listing streams. */
export const CSV_MAX_ROWS = 1_000_000;

export const listQuerySchema = StrictJoi.object({
  status: Joi.string().valid(...RECORD_STATUSES),
  category: name.description('exact match'),
  source: name.description('exact match'),
  // [created_after, created_before): a date alone means its midnight (UTC)
  created_after: isoBound('from', 'created at or after: an ISO 8601 date (its midnight, UTC) or date-time'),
  created_before: isoBound('from', 'created before: an ISO 8601 date (its midnight, UTC) or date-time'),
  sort_by: Joi.string()
    .valid(...SORT_FIELDS)
    .default('created_at')
    .description('then created_at, then id, in the same order'),
  sort_order: Joi.string().valid('asc', 'desc').default('desc'),
  // above the maximum is not an error: the page is just capped
  limit: Joi.number()
    .integer()
    .min(1)
    .unsafe()
    .default(LIST_LIMIT_DEFAULT)
    .custom((n: number) => Math.min(n, LIST_LIMIT_MAX))
    .description(`records per page, ${LIST_LIMIT_DEFAULT} by default; above ${LIST_LIMIT_MAX} means ${LIST_LIMIT_MAX}`),
  offset: Joi.number()
    .integer()
    .min(0)
    .max(LIST_OFFSET_MAX)
    .description('records to skip; to go further, follow next_cursor'),
  cursor: Joi.string().max(1024).description('next_cursor of the previous page, with the same filters and order'),
  format: format.description(
    `\`csv\` (or \`Accept: text/csv\`): every matching record (at most ${CSV_MAX_ROWS.toLocaleString('en')}) as RFC 4180 CSV, from the cursor or offset on, without the page limit`,
  ),
})
  .unknown(false)
  .oxor('cursor', 'offset')
  .custom(createdOrder);

export interface ListRecordsQuery {
  status?: (typeof RECORD_STATUSES)[number];
  category?: string;
  source?: string;
  created_after?: number;
  created_before?: number;
  sort_by: SortField;
  sort_order: SortOrder;
  limit: number;
  offset?: number;
  cursor?: string;
  format?: AnswerFormat;
}

// the service's own messages, set once at the top: a nested schema's .messages() would
// make Joi merge preferences again for every value it validates
const MESSAGES = {
  'string.pattern.name': '{{#label}} must not contain control characters',
  'payload.depth': `{{#label}} must not be nested deeper than ${PAYLOAD_MAX_DEPTH} levels`,
  'payload.keys': `{{#label}} must not have more than ${PAYLOAD_MAX_KEYS} keys in total`,
  'payload.proto': '{{#label}} must not contain a "__proto__" key',
  'date.format': '{{#label}} must be an ISO 8601 date or date-time',
  'date.base': '{{#label}} must be a valid date',
  'range.order': 'date_from must not be after date_to',
  'range.created': 'created_after must not be after created_before',
  'object.oxor': 'use either cursor or offset, not both',
};

// validation preferences baked into each schema once: passed per call, Joi merges them on every validation
const prepared = new WeakMap<Joi.Schema, Joi.Schema>();
function withPreferences(schema: Joi.Schema): Joi.Schema {
  let ready = prepared.get(schema);
  if (!ready) {
    ready = schema.prefs({ abortEarly: false, convert: true, messages: MESSAGES });
    prepared.set(schema, ready);
  }
  return ready;
}

/** Validates against a schema; a failure is the contract's 422 with one detail per problem. */
export function validate<T>(schema: Joi.Schema, value: unknown, where?: string): T {
  // a POST without a body leaves it undefined, which Joi would accept as "nothing to check"
  if (value === undefined) {
    throw new AppError('VALIDATION_ERROR', undefined, [
      { field: where, message: `"${where ?? 'value'}" is required`, type: 'any.required' },
    ]);
  }
  const { value: result, error } = withPreferences(schema).validate(value);
  if (error) {
    const details = error.details.map((d) => ({
      field: [where, ...d.path].filter((p) => p !== undefined && p !== '').join('.') || where || undefined,
      message: d.message,
      type: d.type,
    }));
    throw new AppError('VALIDATION_ERROR', undefined, details);
  }
  return result as T;
}
