import type { Knex } from 'knex';

/**
 * The SQL helpers the repositories share: statements both engines run as written, the
 * errors they answer with, and SQLite's busy retry.
 */

// rows per INSERT statement: 1,000 rows of 10 columns stay under SQLite's limit of 32,766 bound parameters
export const INSERT_CHUNK = 1000;

/**
 * `INSERT INTO <table> (…) VALUES (…), (…)` for `rows` rows: the hot paths skip the
 * query builder, and the same text serves SQLite and PostgreSQL (Knex's own multi-row
 * insert for SQLite is a UNION ALL of SELECTs, slower to parse and capped at 500 rows).
 */
export function multiRowInsertSql(table: string, columns: readonly string[], rows: number): string {
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array(rows).fill(tuple).join(', ')}`;
}

/** Inserts rows (each in `columns` order) in as few statements as SQLite's parameter limit allows. */
export async function insertRows(
  trx: Knex | Knex.Transaction,
  table: string,
  columns: readonly string[],
  rows: readonly Knex.Value[][],
): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK);
    await trx.raw(multiRowInsertSql(table, columns, chunk.length), chunk.flat());
  }
}

/** The rows of a raw statement: SQLite answers an array, PostgreSQL a result with `rows`. */
export function rowsOf<T>(response: T[] | { rows: T[] }): T[] {
  return Array.isArray(response) ? response : response.rows;
}

/** SQLite: SQLITE_CONSTRAINT_PRIMARYKEY/UNIQUE; PostgreSQL: unique_violation. */
export function isUniqueViolation(err: unknown): boolean {
  const { code, message } = err as { code?: string; message?: string };
  return code === '23505' || (code === 'SQLITE_CONSTRAINT' && /UNIQUE|PRIMARY KEY/i.test(message ?? ''));
}

const BUSY_RETRIES = 5;

/**
 * Runs a write, retrying when SQLite's busy timeout ran out under another process's
 * write lock: the caller sees a slow write, not an error.
 */
export async function retryWhileBusy<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= BUSY_RETRIES) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    }
  }
}

/** Times are stored as epoch milliseconds (bigint on PostgreSQL, which the driver returns as a string). */
export const iso = (ms: number | string): string => new Date(Number(ms)).toISOString();
export const isoOrNull = (ms: number | string | null): string | null => (ms === null ? null : iso(ms));
