import Joi from 'joi';
import { MAX_SUMMARY_CATEGORIES } from './db/reports-repository.js';
import { ERROR_CATALOGUE, type ErrorCode } from './errors.js';
import { RECORD_STATUSES } from './state-machine.js';

/**
 * What the API answers, as Joi schemas. The API does not validate its own answers at
 * run time; these are the source of the OpenAPI document's response schemas, and the
 * integration tests check real answers against that document.
 * `className` names each one's entry under `components.schemas`.
 */

const instant = Joi.string().isoDate().description('ISO 8601 instant, UTC');
const status = Joi.string().valid(...RECORD_STATUSES);
const jsonObject = Joi.object().unknown(true);
const count = Joi.number().integer().min(0);

/** Every key present (values may still be null where allowed), as the API always sends them. */
function allRequired(keys: Record<string, Joi.Schema>): Record<string, Joi.Schema> {
  return Object.fromEntries(Object.entries(keys).map(([k, s]) => [k, s.required()]));
}

export const recordSchema = Joi.object(
  allRequired({
    id: Joi.string().guid().description('UUID'),
    source: Joi.string().min(1).max(128),
    category: Joi.string().min(1).max(128),
    payload: jsonObject.description('the JSON object the client sent'),
    status: status.description('pending → processed | failed; failed → pending by an operator retry'),
    result: jsonObject.allow(null).description("the processor's result once processed"),
    error: Joi.string()
      .allow(null)
      .description('why the record failed, or the last transient error while it is being retried'),
    attempts: count.description('processing attempts made in the current queueing'),
    created_at: instant,
    updated_at: instant,
    processed_at: instant.allow(null).description('when it reached processed or failed'),
  }),
).meta({ className: 'Record' });

export const batchSchema = Joi.object(
  allRequired({
    items: Joi.array().items(recordSchema).description('the stored records, in request order'),
    count: count,
  }),
).meta({ className: 'Batch' });

export const recordsPageSchema = Joi.object(
  allRequired({
    items: Joi.array().items(recordSchema).description('in the order asked for'),
    count: count.description('records on this page'),
    total: count.description('records matching the filters, on every page'),
    limit: count.description('the page size used (a limit above 200 is 200)'),
    next_cursor: Joi.string()
      .allow(null)
      .description('pass as `cursor`, with the same filters and order, for the next page; null on the last'),
  }),
).meta({ className: 'RecordsPage' });

export const transitionSchema = Joi.object(
  allRequired({
    from: status.allow(null).description('null for the creation of the record'),
    to: status,
    at: instant,
    attempt: count,
    error: Joi.string().allow(null),
    request_id: Joi.string().allow(null).description('the request that caused it (or queued the job)'),
    job_id: Joi.string().allow(null).description('the BullMQ job that applied it'),
    actor: Joi.string()
      .allow(null)
      .description(
        "who made an operator's retry: the fingerprint of its API key (never the key); null for every other transition and without API_KEYS",
      ),
  }),
).meta({ className: 'Transition' });

export const historySchema = Joi.object({
  items: Joi.array().items(transitionSchema).required().description('oldest first'),
}).meta({ className: 'History' });

const statusCounts = { pending: count, processed: count, failed: count };
const latency = count.allow(null).description('ms; null when no terminal record matches');

const appliedFilters = Joi.object({
  status,
  category: Joi.string(),
  source: Joi.string(),
  date_from: instant,
  date_to: instant,
}).description('the filters applied, dates as instants');

export const summarySchema = Joi.object(
  allRequired({
    generated_at: instant,
    filters: appliedFilters,
    totals: Joi.object(allRequired({ all: count, ...statusCounts })),
    by_category: Joi.array()
      .items(Joi.object(allRequired({ category: Joi.string(), count, ...statusCounts })))
      .max(MAX_SUMMARY_CATEGORIES)
      .description(
        `the categories with a matching record, sorted by category (byte order of UTF-8): the first ${MAX_SUMMARY_CATEGORIES} at most`,
      ),
    category_count: count.description('how many categories have a matching record, listed or not'),
    categories_omitted: count.description(
      'categories left out of by_category by its limit (category_count − its length); filter on category to see one',
    ),
    latency_ms: Joi.object(
      allRequired({
        p50: latency,
        p95: latency,
        p99: latency,
      }),
    ).description(
      'created → processed or failed, over the terminal records matched: nearest-rank percentiles read from a ' +
        'histogram with four bins per doubling, within 8.7% + 0.5 ms of the exact value',
    ),
  }),
).meta({ className: 'Summary' });

export const timeseriesSchema = Joi.object(
  allRequired({
    generated_at: instant,
    bucket: Joi.string().valid('minute', 'hour', 'day'),
    filters: appliedFilters,
    series: Joi.array()
      .items(
        Joi.object(
          allRequired({
            t: instant.description('start of the bucket'),
            created: count.description('records created in the bucket'),
            processed: count.description('records now processed that reached that status in the bucket'),
            failed: count.description('records now failed that reached that status in the bucket'),
          }),
        ),
      )
      .description('every bucket of the range, oldest first, empty ones included'),
  }),
).meta({ className: 'Timeseries' });

export const latencySeriesSchema = Joi.object(
  allRequired({
    generated_at: instant,
    bucket: Joi.string().valid('minute', 'hour', 'day'),
    filters: appliedFilters,
    series: Joi.array()
      .items(
        Joi.object(
          allRequired({
            t: instant.description('start of the bucket'),
            count: count.description('records created in the bucket that are now processed or failed'),
            p50: latency,
            p95: latency,
            p99: latency,
          }),
        ),
      )
      .description(
        'every bucket of the range, oldest first, empty ones included: the latency (created → processed or failed) ' +
          'of the records created in each, within 8.7% + 0.5 ms of the exact value',
      ),
  }),
).meta({ className: 'LatencySeries' });

export const failuresReportSchema = Joi.object(
  allRequired({
    generated_at: instant,
    filters: Joi.object({
      category: Joi.string(),
      source: Joi.string(),
      error: Joi.string(),
      error_contains: Joi.string(),
      created_after: instant,
      created_before: instant,
    }).description('the filters applied, dates as instants'),
    total: count.description('failed records matching'),
    group_count: count.description('distinct error texts among them, listed or not'),
    groups: Joi.array()
      .items(
        Joi.object(
          allRequired({
            error: Joi.string().allow(null).description('the error text the records of this group share'),
            count,
            first_seen: instant.allow(null).description('when the first of them failed'),
            last_seen: instant.allow(null).description('when the last of them failed'),
          }),
        ),
      )
      .description('the largest groups first (then by error text), at most `limit`'),
  }),
).meta({ className: 'FailuresReport' });

export const bulkRetrySchema = Joi.object(
  allRequired({ retried: count.description('records moved from failed to pending and queued') }),
).meta({ className: 'BulkRetry' });

const partStatus = Joi.string().valid('ok', 'error').required();

export const healthSchema = Joi.object(
  allRequired({
    service: Joi.string().valid('ok'),
    version: Joi.string(),
    database: Joi.object({ status: partStatus }),
    queue: Joi.object({
      status: partStatus,
      waiting: count.description('absent when the queue cannot be read'),
      active: count,
      failed: count,
      workers: count.description(
        'worker processes connected to the queue, as Redis lists their connections; absent when it cannot be read',
      ),
    }),
    redis: Joi.object({
      mode: Joi.string().valid('standalone', 'sentinel').required(),
      master_name: Joi.string().description('the master name the sentinels monitor (sentinel mode only)'),
      primary: Joi.string()
        .allow(null)
        .required()
        .description(
          'host:port of the Redis primary this API process is connected to now (found through the sentinels in sentinel mode); null while it is not connected',
        ),
    }),
  }),
).meta({ className: 'Health' });

export const livenessSchema = Joi.object({ status: Joi.string().valid('ok').required() }).meta({
  className: 'Liveness',
});

export const versionSchema = Joi.object(
  allRequired({
    version: Joi.string().description('package version'),
    commit: Joi.string().description('GIT_COMMIT, else the checkout\'s HEAD, else "unknown"'),
    environment: Joi.string().description('NODE_ENV'),
  }),
).meta({ className: 'Version' });

export const categoriesSchema = Joi.object(
  allRequired({
    items: Joi.array().items(
      Joi.object(
        allRequired({
          category: Joi.string().min(1).max(128),
          description: Joi.string().allow(null),
          payload_schema: jsonObject.allow(null).description('the JSON Schema 2020-12 a payload must match'),
          processor: Joi.string()
            .valid('builtin', 'module', 'http')
            .description('what kind of processor does the work'),
        }),
      ).meta({ className: 'Category' }),
    ),
    unknown_categories: Joi.string()
      .valid('accept', 'reject')
      .description('whether a record of a category not listed here is accepted (422 `UNKNOWN_CATEGORY` otherwise)'),
  }),
).meta({ className: 'Categories' });

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

/** An error body whose code is one of these (an operation's answers of one status). */
export function errorBodySchemaFor(codes: readonly ErrorCode[]): Joi.ObjectSchema {
  return Joi.object(
    allRequired({
      error: Joi.object({
        code: Joi.string()
          .valid(...codes)
          .required(),
        message: Joi.string().min(1).required().description('for people; 5xx messages never carry internals'),
        details: Joi.array()
          .items(
            Joi.object({ field: Joi.string(), message: Joi.string().required(), type: Joi.string() }).unknown(true),
          )
          .description('422 only: one entry per problem; `field` is where (`body.source`, `query.status`, …)'),
      }),
      request_id: Joi.string().description('equal to the X-Request-ID response header'),
    }),
  );
}

/** Every error body, whatever the code. */
export const errorBodySchema = errorBodySchemaFor(ERROR_CODES).meta({ className: 'Error' });
