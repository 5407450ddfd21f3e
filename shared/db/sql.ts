import type { Knex } from 'knex';
import type { Dialect } from './knex.js';

/**
 * The SQL helpers the repositories share: statements both engines run as written, the
 * errors they answer with, the statements a transaction sends together, and SQLite's
 * busy retry.
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

/**
 * A value written into the SQL text, for what `?` would have bound. A string is quoted
 * with its quotes doubled, SQLite's one escape. On PostgreSQL a string holding a
 * backslash is written E'…' with the backslashes doubled too, which reads the same
 * whatever standard_conforming_strings says. On SQLite a string holding NUL, which would
 * end the text where SQLite reads it, goes in as UTF-8 hex; PostgreSQL's text cannot
 * hold NUL at all.
 */
export function sqlLiteral(value: Knex.Value, dialect: Dialect): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') {
    const quoted = `'${value.replaceAll("'", "''")}'`;
    if (dialect === 'sqlite') {
      return value.includes('\0') ? `CAST(X'${Buffer.from(value, 'utf8').toString('hex')}' AS TEXT)` : quoted;
    }
    if (value.includes('\0')) throw new TypeError('PostgreSQL text cannot hold NUL');
    return value.includes('\\') ? `E${quoted.replaceAll('\\', '\\\\')}` : quoted;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} as SQL`);
    return String(value);
  }
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  throw new TypeError(`cannot write a ${typeof value} as SQL`);
}

/** `sql` with each `?` replaced by its value as a literal; the text must hold no quoted part. */
export function withLiterals(sql: string, bindings: readonly Knex.Value[], dialect: Dialect): string {
  if (/['"`]/.test(sql)) throw new Error('a statement with literals of its own cannot take more');
  const parts = sql.split('?');
  if (parts.length - 1 !== bindings.length) {
    throw new Error(`${parts.length - 1} placeholders for ${bindings.length} values`);
  }
  return parts.reduce((text, part, i) => text + sqlLiteral(bindings[i - 1]!, dialect) + part);
}

/** The drivers' connections, as far as a script of several statements goes. */
interface SqliteConnection {
  exec(sql: string, cb: (err: Error | null) => void): void;
}
interface PgConnection {
  query(sql: string): Promise<unknown>;
}

/**
 * The statements of a transaction whose results it does not read (history, counters,
 * events, deliveries), sent together by `flush` as one script with their values written
 * in. Each statement sent on its own would wait for the process's busy event loop before
 * the next could go, all the while holding the locks the transaction took: on SQLite the
 * write lock every process shares, on PostgreSQL the rows' locks and the event log's.
 */
export class Writes {
  private statements: Array<{ sql: string; bindings: readonly Knex.Value[] }> = [];

  constructor(readonly trx: Knex.Transaction) {}

  raw(sql: string, bindings: readonly Knex.Value[] = []): this {
    this.statements.push({ sql, bindings });
    return this;
  }

  /** Inserts rows (each in `columns` order), at most INSERT_CHUNK a statement. */
  insertRows(table: string, columns: readonly string[], rows: readonly Knex.Value[][]): this {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      this.raw(multiRowInsertSql(table, columns, chunk.length), chunk.flat());
    }
    return this;
  }

  /** Runs what was queued, in order; an error rolls back the transaction as any statement's would. */
  async flush(): Promise<void> {
    const statements = this.statements;
    this.statements = [];
    if (statements.length === 0) return;
    const dialect: Dialect = this.trx.client.config.client === 'sqlite3' ? 'sqlite' : 'postgres';
    const script = statements.map(({ sql, bindings }) => `${withLiterals(sql, bindings, dialect)};`).join('\n');
    const conn: unknown = await this.trx.client.acquireConnection();
    if (dialect === 'postgres') {
      await (conn as PgConnection).query(script);
      return;
    }
    await new Promise<void>((resolve, reject) =>
      (conn as SqliteConnection).exec(script, (err) => (err ? reject(err) : resolve())),
    );
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
