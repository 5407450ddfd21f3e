import net from 'node:net';

export interface SentinelAddress {
  host: string;
  port: number;
}

/** Where the processes find Redis: one server, or the primary a group of sentinels points at. */
export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | {
      mode: 'sentinel';
      sentinels: SentinelAddress[];
      /** the master name the sentinels monitor */
      name: string;
      db: number;
      /** credentials of the primary and its replicas */
      username?: string;
      password?: string;
      /** credentials of the sentinels themselves, when they differ (query `sentinel_username`, `sentinel_password`) */
      sentinelUsername?: string;
      sentinelPassword?: string;
    };

export class RedisUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUrlError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

const SENTINEL_SCHEME = 'redis+sentinel://';
const DEFAULT_SENTINEL_PORT = 26379;
const SENTINEL_QUERY = new Set(['db', 'sentinel_username', 'sentinel_password']);
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`${what} is not valid percent-encoding`);
  }
}

function parseSentinelAddress(text: string): SentinelAddress {
  // [v6]:port, [v6], host:port or host
  const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(text);
  if (!match) throw new RedisUrlError(`"${text}" is not host:port`);
  const host = match[1]!;
  const bracketed = text.startsWith('[');
  if (bracketed ? net.isIPv6(host) === false : !(net.isIPv4(host) || HOSTNAME.test(host))) {
    throw new RedisUrlError(`"${host}" is not a host name or IP address`);
  }
  const port = match[2] === undefined ? DEFAULT_SENTINEL_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RedisUrlError(`"${text}" has no valid port`);
  return { host, port };
}

/**
 * `redis+sentinel://[user:password@]host:port[,host:port…]/<master name>[?db=N]`: the
 * standard URL parser takes one host only, so the list is split here. The credentials are
 * the primary's (and its replicas'); sentinels that need their own take them in the query.
 */
function parseSentinelUrl(url: string): RedisTarget {
  const rest = url.slice(SENTINEL_SCHEME.length);
  const hashAt = rest.indexOf('#');
  const withoutHash = hashAt === -1 ? rest : rest.slice(0, hashAt);
  const queryAt = withoutHash.indexOf('?');
  const beforeQuery = queryAt === -1 ? withoutHash : withoutHash.slice(0, queryAt);
  const query = new URLSearchParams(queryAt === -1 ? '' : withoutHash.slice(queryAt + 1));
  const slashAt = beforeQuery.indexOf('/');
  const authority = slashAt === -1 ? beforeQuery : beforeQuery.slice(0, slashAt);
  const path = slashAt === -1 ? '' : beforeQuery.slice(slashAt + 1);

  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? null : authority.slice(0, at);
  const hosts = at === -1 ? authority : authority.slice(at + 1);
  if (hosts === '') throw new RedisUrlError('names no sentinel (host:port[,host:port…])');
  const sentinels = hosts.split(',').map((h) => parseSentinelAddress(h.trim()));

  const name = decode(path, 'the master name');
  if (name === '' || name.includes('/')) {
    throw new RedisUrlError('needs the master name as its path: redis+sentinel://host:port,…/<master name>');
  }

  for (const key of query.keys()) {
    if (!SENTINEL_QUERY.has(key))
      throw new RedisUrlError(`unknown parameter "${key}" (db, sentinel_username, sentinel_password)`);
  }
  const dbText = query.get('db') ?? '0';
  if (!/^\d{1,5}$/.test(dbText)) throw new RedisUrlError(`db must be a database number, not "${dbText}"`);

  const target: RedisTarget = { mode: 'sentinel', sentinels, name, db: Number(dbText) };
  if (userinfo !== null) {
    const colon = userinfo.indexOf(':');
    const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'the user name');
    const password = colon === -1 ? '' : decode(userinfo.slice(colon + 1), 'the password');
    if (username !== '') target.username = username;
    if (password !== '') target.password = password;
  }
  const sentinelUsername = query.get('sentinel_username');
  const sentinelPassword = query.get('sentinel_password');
  if (sentinelUsername) target.sentinelUsername = sentinelUsername;
  if (sentinelPassword) target.sentinelPassword = sentinelPassword;
  return target;
}

/** Reads REDIS_URL: `redis://…` or `rediss://…` (one server), or `redis+sentinel://…`. Throws RedisUrlError. */
export function parseRedisUrl(url: string): RedisTarget {
  if (url.toLowerCase().startsWith(SENTINEL_SCHEME)) return parseSentinelUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUrlError('is not a URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RedisUrlError('must be redis://, rediss:// or redis+sentinel://');
  }
  if (parsed.hostname === '') throw new RedisUrlError('names no host');
  return { mode: 'standalone', url };
}
