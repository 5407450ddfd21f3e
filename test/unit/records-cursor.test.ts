import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { AppError, decodeCursor, encodeCursor, type ListRecordsQuery } from '../../shared/index.js';

const query = (over: Partial<ListRecordsQuery> = {}): ListRecordsQuery => ({
  sort_by: 'created_at',
  sort_order: 'desc',
  limit: 50,
  ...over,
});

/** The message of the 422 a bad cursor gets, or null when it decodes. */
function refusal(q: ListRecordsQuery, cursor: string): string | null {
  try {
    decodeCursor(q, cursor);
    return null;
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    const { code, details } = err as AppError;
    expect(code).to.equal('VALIDATION_ERROR');
    const [detail] = details as Array<{ field: string; message: string }>;
    expect(detail!.field).to.equal('query.cursor');
    return detail!.message;
  }
}

/** A cursor whose body is `parts`, with a valid check: what a client who knows the format could forge. */
function forged(parts: unknown): string {
  const body = Buffer.from(JSON.stringify(parts)).toString('base64url');
  const check = createHash('sha256').update(`records-cursor\n${body}`).digest().subarray(0, 16).toString('base64url');
  return `${body}.${check}`;
}

describe('records cursor', () => {
  const id = '0190d3c4-0000-7000-8000-000000000000';

  it('round-trips the position of every sort order, whatever the page size', () => {
    const cases: Array<[ListRecordsQuery, Array<string | number>]> = [
      [query(), [1_767_225_600_000, id]],
      [query({ sort_by: 'status', sort_order: 'asc' }), ['failed', 1, id]],
      [query({ sort_by: 'category', category: 'lead' }), ['lead', 5, id]],
      [query({ sort_by: 'source', created_after: 10, created_before: 20 }), ['crm', 15, id]],
    ];
    for (const [q, position] of cases) {
      const cursor = encodeCursor(q, position);
      expect(cursor).to.match(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      expect(decodeCursor({ ...q, limit: 7 }, cursor)).to.deep.equal(position);
    }
  });

  it('refuses a cursor that was edited, truncated, padded or made up', () => {
    const q = query();
    const cursor = encodeCursor(q, [1000, id]);
    const [body, check] = cursor.split('.') as [string, string];
    const flipped = `${body.slice(0, -1)}${body.endsWith('A') ? 'B' : 'A'}.${check}`;
    for (const bad of [flipped, body, `${body}.`, `.${check}`, `${cursor}.x`, cursor.slice(0, -2), 'x', '']) {
      expect(refusal(q, bad), bad).to.equal('"cursor" is not a cursor from this service');
    }
  });

  it('refuses a cursor of other filters or another order, saying so', () => {
    const cursor = encodeCursor(query({ status: 'failed' }), [1000, id]);
    for (const other of [query(), query({ status: 'processed' }), query({ status: 'failed', sort_order: 'asc' })]) {
      expect(refusal(other, cursor)).to.equal(
        '"cursor" belongs to other filters or another order: repeat them as they were',
      );
    }
    expect(refusal(query({ status: 'failed' }), cursor)).to.equal(null);
  });

  it('refuses a well-checked cursor whose version or position is not one this service makes', () => {
    const q = query({ sort_by: 'status' });
    const queryPart = [null, null, null, null, null, 'status', 'desc'];
    for (const parts of [
      [2, queryPart, ['failed', 1, id]], // another version
      [1, queryPart, ['archived', 1, id]], // not a status
      [1, queryPart, ['failed', 1.5, id]], // not whole milliseconds
      [1, queryPart, ['failed', 1, 'x'.repeat(37)]], // not an id
      [1, queryPart, ['failed', 1]], // too short
      [1, queryPart, 'failed'],
      { not: 'an array' },
    ]) {
      expect(refusal(q, forged(parts)), JSON.stringify(parts)).to.equal('"cursor" is not a cursor from this service');
    }
    expect(refusal(q, forged([1, queryPart, ['failed', 1, id]]))).to.equal(null);
  });
});
