/**
 * Errors that say a dependency cannot be reached rather than that something is broken:
 * connections refused or dropped, Knex finding no free connection in time, PostgreSQL
 * shutting down or out of connections, SQLite still locked after its retries, Redis
 * away or failing over.
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

/**
 * What ioredis says while Redis is away or changing primaries: most of these carry no
 * code, only a message (a reply error's first word is Redis's own error code).
 */
const REDIS_UNAVAILABLE = [
  /^READONLY\b/, // written to a primary that has just become a replica
  /^(LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|UNBLOCKED)\b/,
  /^All sentinels are unreachable/,
  /^Stream isn't writeable/, // not connected, and the connection queues nothing (the API's)
  /^Connection is closed/,
  /^Command aborted due to connection close/,
];

export function isRedisUnavailable(err: unknown): boolean {
  const { name, message } = (err ?? {}) as { name?: string; message?: unknown };
  if (name === 'MaxRetriesPerRequestError') return true;
  return typeof message === 'string' && REDIS_UNAVAILABLE.some((pattern) => pattern.test(message));
}

export function isDependencyUnavailable(err: unknown): boolean {
  const { name, code } = (err ?? {}) as { name?: string; code?: unknown };
  return (
    name === 'KnexTimeoutError' || (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) || isRedisUnavailable(err)
  );
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
