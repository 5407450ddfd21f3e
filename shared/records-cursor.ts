import { createHash } from 'node:crypto';
import { AppError } from './errors.js';
import { RECORD_STATUSES } from './state-machine.js';
import type { ListPosition, SortField } from './db/index.js';
import type { ListRecordsQuery } from './schemas.js';

/**
 * `next_cursor`: where a listing page ended, for the same filters and order only.
 * base64url(JSON) + "." + a SHA-256 check over it, so an edited, truncated or
 * re-used-elsewhere cursor is refused instead of silently paging something else. The
 * check is not a secret: a cursor holds nothing but the sort values of a record the
 * client has already seen.
 */
const VERSION = 1;
const CHECK_LENGTH = 16;

/** What a cursor belongs to: the filters and the order, not the page size. */
function queryOf(q: ListRecordsQuery): unknown[] {
  return [
    q.status ?? null,
    q.category ?? null,
    q.source ?? null,
    q.created_after ?? null,
    q.created_before ?? null,
    q.sort_by,
    q.sort_order,
  ];
}

const checkOf = (body: string) =>
  createHash('sha256').update(`records-cursor\n${body}`).digest().subarray(0, CHECK_LENGTH).toString('base64url');

export function encodeCursor(q: ListRecordsQuery, position: ListPosition): string {
  const body = Buffer.from(JSON.stringify([VERSION, queryOf(q), position])).toString('base64url');
  return `${body}.${checkOf(body)}`;
}

const isMs = (v: unknown) => Number.isSafeInteger(v);
const isText = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 128;

function positionIsValid(sortBy: SortField, position: unknown): position is ListPosition {
  if (!Array.isArray(position)) return false;
  const rest = sortBy === 'created_at' ? position : position.slice(1);
  if (sortBy === 'status' && !RECORD_STATUSES.includes(position[0] as never)) return false;
  if (sortBy !== 'created_at' && !isText(position[0])) return false;
  return rest.length === 2 && isMs(rest[0]) && typeof rest[1] === 'string' && rest[1].length <= 36;
}

function refuse(message: string): never {
  throw new AppError('VALIDATION_ERROR', undefined, [{ field: 'query.cursor', message, type: 'cursor.invalid' }]);
}

/** The position a cursor stands for; 422 when it was not made by this service for this query. */
export function decodeCursor(q: ListRecordsQuery, cursor: string): ListPosition {
  const [body, check, ...extra] = cursor.split('.');
  if (!body || !check || extra.length > 0 || check !== checkOf(body))
    refuse('"cursor" is not a cursor from this service');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    refuse('"cursor" is not a cursor from this service');
  }
  const [version, query, position] = Array.isArray(parsed) ? parsed : [];
  if (version !== VERSION || !positionIsValid(q.sort_by, position))
    refuse('"cursor" is not a cursor from this service');
  if (JSON.stringify(query) !== JSON.stringify(queryOf(q))) {
    refuse('"cursor" belongs to other filters or another order: repeat them as they were');
  }
  return position;
}
