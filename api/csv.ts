import { Readable } from 'node:stream';
import type { Context } from 'koa';
import type { AnswerFormat, Logger } from '../shared/index.js';

/**
 * RFC 4180: a field holding a comma, a double quote, CR or LF is quoted, its quotes
 * doubled; null is an empty field; objects are written as JSON.
 */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record of the file, CRLF-terminated as RFC 4180 has it. */
export const csvRow = (values: readonly unknown[]): string => `${values.map(csvField).join(',')}\r\n`;

/** `?format=csv`, or no format asked for and `Accept` preferring text/csv to JSON. */
export function wantsCsv(ctx: Context, format: AnswerFormat | undefined): boolean {
  if (format !== undefined) return format === 'csv';
  return ctx.accepts('application/json', 'text/csv') === 'text/csv';
}

const CSV_TYPE = 'text/csv; charset=utf-8; header=present';

/** Answers a CSV file of a header row and rows, built at once (a report) or streamed (a listing). */
export function sendCsv(
  ctx: Context,
  filename: string,
  header: readonly string[],
  rows: Iterable<readonly unknown[]> | AsyncIterable<readonly unknown[]>,
  logger: Logger,
): void {
  ctx.status = 200;
  ctx.type = CSV_TYPE;
  ctx.set('Content-Disposition', `attachment; filename="${filename}"`);
  async function* lines(): AsyncGenerator<string> {
    yield csvRow(header);
    try {
      for await (const row of rows) yield csvRow(row);
    } catch (err) {
      // the status is sent already: the client sees a cut-off file, the log says why
      logger.error({ err, request_id: ctx.state.requestId as string }, 'CSV answer ended early');
      throw err;
    }
  }
  ctx.body = Readable.from(lines());
}
