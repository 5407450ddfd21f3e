/**
 * Errors that say a dependency cannot be reached rather than that something is broken:
 * connections refused or dropped, Knex finding no free connection in time, PostgreSQL
 * shutting down or out of connections, SQLite still locked after its retries.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  'SQLITE_BUSY',
]);

export function isDependencyUnavailable(err: unknown): boolean {
  const { name, code } = (err ?? {}) as { name?: string; code?: unknown };
  return name === 'KnexTimeoutError' || (typeof code === 'string' && UNAVAILABLE_CODES.has(code));
}

/**
 * Whether the database answered a statement with an error of its own (a constraint, a
 * trigger, a value it cannot store): the transaction did not commit, so its items can be
 * written again. A lost connection gives no such answer, and a write it carried may have
 * committed.
 */
export function isRefusedByDatabase(err: unknown): boolean {
  // PostgreSQL's errors carry a SQLSTATE code and a severity, SQLite's an SQLITE_ code
  const { code, severity } = (err ?? {}) as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || isDependencyUnavailable(err)) return false;
  return code.startsWith('SQLITE_') || typeof severity === 'string';
}
