import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { Logger } from '../logger.js';

export type Dialect = 'sqlite' | 'postgres';

export function dialectOf(databaseUrl: string): Dialect {
  return databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres';
}

/**
 * A Knex instance for `sqlite:<path>` (or `sqlite::memory:`) or a `postgres://` URL.
 *
 * SQLite is tuned so the API and any number of worker processes can share one file:
 * WAL lets readers run beside the writer, busy_timeout makes a second writer wait for
 * the lock instead of failing, and synchronous=NORMAL is durable in WAL mode up to the
 * last checkpoint-free commit on power loss (never corrupt).
 */
export interface KnexOptions {
  /** most PostgreSQL connections this process opens (DATABASE_POOL_MAX); SQLite always uses one writer */
  poolMax?: number;
  /** where Knex's own warnings go (a refused connection, say); without one, Knex prints them to the console */
  logger?: Logger;
}

/** Knex's warnings as log lines of the process, not bare text on stderr. */
function knexLog(logger: Logger): Knex.Config['log'] {
  const line = (level: 'warn' | 'error' | 'debug') => (message: unknown) =>
    logger[level]({ component: 'knex' }, typeof message === 'string' ? message : JSON.stringify(message));
  return { warn: line('warn'), error: line('error'), deprecate: line('warn'), debug: line('debug') };
}

export function createKnex(
  databaseUrl: string,
  role: 'writer' | 'reader' = 'writer',
  { poolMax = 10, logger }: KnexOptions = {},
): Knex {
  const log = logger ? knexLog(logger) : undefined;
  if (dialectOf(databaseUrl) === 'sqlite') {
    const filename = databaseUrl.slice('sqlite:'.length);
    if (filename !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    const pragmas =
      role === 'writer'
        ? 'PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;'
        : 'PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;';
    return knexFactory({
      client: 'sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      log,
      pool: {
        // one writing connection per process: SQLite has one writer anyway, and
        // in-process writes queue here instead of contending for the file lock.
        // Reads get connections of their own, so they never wait behind a write.
        min: 1,
        max: role === 'writer' ? 1 : 2,
        afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
          if (role === 'writer') beginImmediate(conn);
          conn.exec(pragmas, (err) => done(err, conn));
        },
      },
    });
  }
  return knexFactory({
    client: 'pg',
    connection: databaseUrl,
    log,
    // each API or worker process holds its own pool: size the server's max_connections
    // for (API processes + worker processes) × DATABASE_POOL_MAX, plus migrations and admin
    pool: { min: 0, max: poolMax },
  });
}

interface SqliteConnection {
  exec(sql: string, cb: (err: Error | null) => void): void;
  all(sql: string, bindings: unknown, cb: (...args: unknown[]) => void): void;
}

/**
 * The writer's transactions begin with BEGIN IMMEDIATE, which waits (busy_timeout) for
 * the write lock before any statement runs. Knex begins them DEFERRED: a transaction that
 * reads first would take a snapshot, and its first write would then fail at once with
 * SQLITE_BUSY if another process committed meanwhile, where waiting cannot help. Every
 * transaction on the writer writes, so none waits for the lock needlessly.
 */
function beginImmediate(conn: SqliteConnection): void {
  const all = conn.all.bind(conn);
  conn.all = (sql, bindings, cb) => all(sql === 'BEGIN;' ? 'BEGIN IMMEDIATE;' : sql, bindings, cb);
}
