import Joi from 'joi';
import { AppError } from './errors.js';
import { RECORD_STATUSES } from './records.js';

const name = Joi.string().min(1).max(128);

export const recordInputSchema = Joi.object({
  source: name.required(),
  category: name.required(),
  payload: Joi.object().unknown(true).required(),
}).unknown(false);

export const recordIdSchema = Joi.string().guid({ version: ['uuidv4', 'uuidv7'] });

export const processQuerySchema = Joi.object({
  process: Joi.boolean().truthy('1').falsy('0').default(false),
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
function isoBound(kind: 'from' | 'to') {
  return Joi.string().custom((value: string, helpers) => {
    if (!DATE_ONLY.test(value) && !DATE_TIME.test(value)) return helpers.error('date.format');
    const ms = Date.parse(DATE_ONLY.test(value) ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(ms) || !isCalendarDate(value.slice(0, 10))) return helpers.error('date.base');
    return kind === 'to' && DATE_ONLY.test(value) ? ms + 86_400_000 - 1 : ms;
  }, 'ISO 8601 date or date-time');
}

const dateMessages = {
  'date.format': '{{#label}} must be an ISO 8601 date or date-time',
  'date.base': '{{#label}} must be a valid date',
};

export const summaryQuerySchema = Joi.object({
  status: Joi.string().valid(...RECORD_STATUSES),
  category: name,
  source: name,
  date_from: isoBound('from'),
  date_to: isoBound('to'),
})
  .unknown(false)
  .custom((value: { date_from?: number; date_to?: number }, helpers) => {
    if (value.date_from !== undefined && value.date_to !== undefined && value.date_from > value.date_to) {
      return helpers.error('any.invalid', { label: 'date_from' });
    }
    return value;
  })
  .messages({ ...dateMessages, 'any.invalid': 'date_from must not be after date_to' });

export interface SummaryFilters {
  status?: (typeof RECORD_STATUSES)[number];
  category?: string;
  source?: string;
  date_from?: number;
  date_to?: number;
}

/** Validates against a schema; a failure is the contract's 422 with one detail per problem. */
export function validate<T>(schema: Joi.Schema, value: unknown, where?: string): T {
  const { value: result, error } = schema.validate(value, { abortEarly: false, convert: true });
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
