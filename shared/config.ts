import fs from 'node:fs';
import net from 'node:net';
import { parseEnv } from 'node:util';
import Joi from 'joi';
import { CategoriesFileError, defaultCategories, loadCategories, type Categories } from './categories.js';
import { parseRedisUrl, RedisUrlError, type RedisTarget } from './redis-url.js';
import { parseSecretKey } from './webhook-secrets.js';

/**
 * Which peers may say who the client is in X-Forwarded-For: the nearest `hops` proxies
 * (every request comes through them), or peers at these addresses and subnets.
 */
export type TrustProxy = { hops: number } | { addresses: readonly string[] };

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string;
  /** most connections one process opens to PostgreSQL (SQLite always uses one) */
  readonly databasePoolMax: number;
  readonly redisUrl: string;
  /** REDIS_URL read: one server, or a master name and its sentinels */
  readonly redis: RedisTarget;
  /** null: the client is the socket's peer */
  readonly trustProxy: TrustProxy | null;
  /** presented keys that may fail per client address per minute before every key it presents is refused (0: no limit) */
  readonly authFailuresPerMinute: number;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  readonly apiKeys: readonly string[];
  readonly workerConcurrency: number;
  readonly maxAttempts: number;
  readonly retryBackoffMs: number;
  readonly bodyLimit: string;
  readonly reconcileIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  readonly jobLockMs: number;
  readonly stalledIntervalMs: number;
  readonly metricsPort: number;
  readonly rateLimitPerMinute: number | null;
  readonly queuePrefix: string;
  /** the queue UI may change jobs (retry, remove, pause); read-only otherwise */
  readonly adminWrite: boolean;
  readonly migrateOnStart: boolean;
  readonly environment: string;
  readonly gitCommit: string | null;
  /** CATEGORIES_FILE read and validated; without it, every category gets the built-in processor */
  readonly categories: Categories;
  readonly webhooks: WebhookSettings;
  readonly events: EventStreamSettings;
}

/** Webhook deliveries (docs/webhooks.md). */
export interface WebhookSettings {
  readonly timeoutMs: number;
  /** the first retry's delay; each further one doubles it, up to an hour */
  readonly backoffMs: number;
  readonly maxAttempts: number;
  readonly allowPrivateUrls: boolean;
  /** deliveries in flight per worker process */
  readonly concurrency: number;
  /** delivered and failed deliveries are deleted this long after they ended (EVENT_RETENTION_HOURS) */
  readonly retentionMs: number;
  /** encrypts stored signing secrets; null: stored as they are */
  readonly secretKey: Buffer | null;
}

/** The event log and `GET /events`. */
export interface EventStreamSettings {
  /** events older than this are deleted (EVENT_RETENTION_HOURS) */
  readonly retentionMs: number;
  /** open streams one API process serves; past it, 503 */
  readonly maxStreams: number;
  /** a comment line this often on every stream (15 s) */
  readonly heartbeatMs: number;
}

// a comment on every open event stream this often keeps proxies from closing an idle one
const EVENTS_HEARTBEAT_MS = 15_000;

/** A key must travel in a header as is: visible ASCII, no spaces (commas separate keys). */
const API_KEY = /^[\x21-\x2b\x2d-\x7e]+$/;

const schema = Joi.object({
  PORT: Joi.number().integer().min(0).max(65535).default(3000),
  HOST: Joi.alternatives(Joi.string().ip({ cidr: 'forbidden' }), Joi.string().hostname())
    .default('0.0.0.0')
    .messages({ 'alternatives.match': '"HOST" must be an IP address or a host name' }),
  DATABASE_URL: Joi.string()
    .pattern(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/)
    .default('sqlite:./data/workflow.db')
    .messages({ 'string.pattern.base': '"DATABASE_URL" must be sqlite:<path> or postgres://…' }),
  DATABASE_POOL_MAX: Joi.number().integer().min(1).max(1000).default(10),
  REDIS_URL: Joi.string().custom((value: string, helpers) => {
    try {
      parseRedisUrl(value);
      return value;
    } catch (err) {
      if (err instanceof RedisUrlError) return helpers.message({ custom: `"REDIS_URL" ${err.message}` });
      throw err;
    }
  }),
  LOG_LEVEL: Joi.string().valid('trace', 'debug', 'info', 'warn', 'error', 'fatal').default('info'),
  API_KEYS: Joi.string()
    .custom((value: string, helpers) => {
      const bad = value
        .split(',')
        .map((k) => k.trim())
        .some((k) => k !== '' && !API_KEY.test(k));
      return bad ? helpers.error('string.pattern.base') : value;
    })
    .messages({ 'string.pattern.base': '"API_KEYS" must be comma-separated keys of visible ASCII without spaces' }),
  WORKER_CONCURRENCY: Joi.number().integer().min(1).max(1000).default(16),
  MAX_ATTEMPTS: Joi.number().integer().min(1).max(100).default(5),
  RETRY_BACKOFF_MS: Joi.number().integer().min(0).default(1000),
  BODY_LIMIT: Joi.string()
    .pattern(/^\d+(b|kb|mb)$/i)
    .default('1mb'),
  RECONCILE_INTERVAL_MS: Joi.number().integer().min(100).default(10000),
  SHUTDOWN_TIMEOUT_MS: Joi.number().integer().min(0).default(30000),
  JOB_LOCK_MS: Joi.number().integer().min(1000).default(30000),
  STALLED_INTERVAL_MS: Joi.number().integer().min(500).default(15000),
  METRICS_PORT: Joi.number().integer().min(0).max(65535).default(9464),
  RATE_LIMIT_PER_MINUTE: Joi.number().integer().min(1),
  AUTH_FAILURES_PER_MINUTE: Joi.number().integer().min(0).default(20),
  TRUST_PROXY: Joi.string().custom((value: string, helpers) => {
    try {
      parseTrustProxy(value);
      return value;
    } catch (err) {
      return helpers.message({ custom: `"TRUST_PROXY" ${(err as Error).message}` });
    }
  }),
  QUEUE_PREFIX: Joi.string()
    .pattern(/^[^:\s]+$/)
    .default('bull'),
  ADMIN_WRITE: Joi.boolean().truthy('1').falsy('0').default(false),
  MIGRATE_ON_START: Joi.boolean().truthy('1').falsy('0').default(true),
  NODE_ENV: Joi.string()
    .pattern(/^[A-Za-z0-9._-]{1,32}$/)
    .default('development')
    .messages({ 'string.pattern.base': '"NODE_ENV" must be 1-32 letters, digits, ".", "_" or "-"' }),
  CATEGORIES_FILE: Joi.string(),
  GIT_COMMIT: Joi.string()
    .pattern(/^[A-Za-z0-9._-]{1,64}$/)
    .messages({ 'string.pattern.base': '"GIT_COMMIT" must be 1-64 letters, digits, ".", "_" or "-"' }),
  WEBHOOK_TIMEOUT_MS: Joi.number().integer().min(100).max(60_000).default(5000),
  WEBHOOK_BACKOFF_MS: Joi.number().integer().min(0).default(10_000),
  WEBHOOK_MAX_ATTEMPTS: Joi.number().integer().min(1).max(100).default(12),
  WEBHOOK_ALLOW_PRIVATE_URLS: Joi.boolean().truthy('1').falsy('0').default(false),
  WEBHOOK_CONCURRENCY: Joi.number().integer().min(1).max(1000).default(16),
  WEBHOOK_SECRET_KEY: Joi.string().custom((value: string, helpers) => {
    try {
      parseSecretKey(value);
      return value;
    } catch (err) {
      return helpers.message({ custom: `"WEBHOOK_SECRET_KEY" ${(err as Error).message}` });
    }
  }),
  EVENT_RETENTION_HOURS: Joi.number().min(0).default(72),
  EVENTS_MAX_STREAMS: Joi.number().integer().min(1).max(100_000).default(1000),
})
  .unknown(true)
  .prefs({ convert: true, abortEarly: true });

/** Every environment variable the configuration reads (README and .env.example list exactly these). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(schema.describe().keys ?? {}));

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** Reads and validates the environment once. The only place that reads process.env. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // an empty variable means "not set", as in most shells' `FOO= cmd`
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const { value, error } = schema.validate(present);
  if (error) {
    const variable = String(error.details[0]?.path[0] ?? 'environment');
    throw new ConfigError(variable, `invalid ${variable}: ${error.details[0]?.message ?? error.message}`);
  }
  const redisUrl: string = value.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const keys = String(value.API_KEYS ?? '')
    .split(',')
    .map((k: string) => k.trim())
    .filter(Boolean);
  return Object.freeze({
    port: value.PORT,
    host: value.HOST,
    databaseUrl: value.DATABASE_URL,
    databasePoolMax: value.DATABASE_POOL_MAX,
    redisUrl,
    redis: parseRedisUrl(redisUrl),
    trustProxy: value.TRUST_PROXY === undefined ? null : parseTrustProxy(value.TRUST_PROXY),
    authFailuresPerMinute: value.AUTH_FAILURES_PER_MINUTE,
    logLevel: value.LOG_LEVEL,
    apiKeys: Object.freeze(keys),
    workerConcurrency: value.WORKER_CONCURRENCY,
    maxAttempts: value.MAX_ATTEMPTS,
    retryBackoffMs: value.RETRY_BACKOFF_MS,
    bodyLimit: value.BODY_LIMIT,
    reconcileIntervalMs: value.RECONCILE_INTERVAL_MS,
    shutdownTimeoutMs: value.SHUTDOWN_TIMEOUT_MS,
    jobLockMs: value.JOB_LOCK_MS,
    stalledIntervalMs: value.STALLED_INTERVAL_MS,
    metricsPort: value.METRICS_PORT,
    rateLimitPerMinute: value.RATE_LIMIT_PER_MINUTE ?? null,
    queuePrefix: value.QUEUE_PREFIX,
    adminWrite: value.ADMIN_WRITE,
    migrateOnStart: value.MIGRATE_ON_START,
    environment: value.NODE_ENV,
    gitCommit: value.GIT_COMMIT ?? null,
    categories:
      value.CATEGORIES_FILE === undefined ? defaultCategories() : categoriesOrThrow(value.CATEGORIES_FILE, env),
    webhooks: Object.freeze({
      timeoutMs: value.WEBHOOK_TIMEOUT_MS,
      backoffMs: value.WEBHOOK_BACKOFF_MS,
      maxAttempts: value.WEBHOOK_MAX_ATTEMPTS,
      allowPrivateUrls: value.WEBHOOK_ALLOW_PRIVATE_URLS,
      concurrency: value.WEBHOOK_CONCURRENCY,
      retentionMs: Math.round(value.EVENT_RETENTION_HOURS * 3_600_000),
      secretKey: value.WEBHOOK_SECRET_KEY === undefined ? null : parseSecretKey(value.WEBHOOK_SECRET_KEY),
    }),
    events: Object.freeze({
      retentionMs: Math.round(value.EVENT_RETENTION_HOURS * 3_600_000),
      maxStreams: value.EVENTS_MAX_STREAMS,
      heartbeatMs: EVENTS_HEARTBEAT_MS,
    }),
  });
}

function categoriesOrThrow(file: string, env: NodeJS.ProcessEnv): Categories {
  try {
    // the file names the variables holding its secrets; they are read here, with the rest of the environment
    return loadCategories(file, env);
  } catch (err) {
    if (err instanceof CategoriesFileError)
      throw new ConfigError('CATEGORIES_FILE', `invalid CATEGORIES_FILE ${err.message}`);
    throw err;
  }
}

const MAX_PROXY_HOPS = 16;

/** TRUST_PROXY: `false`, a hop count, or comma-separated addresses and CIDR subnets (IPv4 or IPv6). */
export function parseTrustProxy(text: string): TrustProxy | null {
  const value = text.trim();
  if (value === 'false' || value === '0') return null;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops > MAX_PROXY_HOPS) throw new Error(`must be a hop count of 1-${MAX_PROXY_HOPS} or proxy addresses`);
    return Object.freeze({ hops });
  }
  const addresses = value
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (addresses.length === 0) throw new Error('must be a hop count or proxy addresses');
  for (const entry of addresses) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = net.isIP(address);
    const bits = family === 6 ? 128 : 32;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !prefixOk || extra !== undefined) {
      throw new Error(`must be a hop count or comma-separated IP addresses and subnets (a.b.c.d/n), not "${entry}"`);
    }
  }
  return Object.freeze({ addresses: Object.freeze(addresses) });
}

/** The dotenv file the entry points read, relative to the working directory. */
const DOTENV_FILE = '.env';

/**
 * Adds a dotenv file's variables to `env`, except those already in it, even empty: the
 * environment wins (`FOO= npm start` unsets a FOO the file gives). False when there is no file.
 */
export function applyEnvFile(env: NodeJS.ProcessEnv, file: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new ConfigError(file, `cannot read ${file}: ${(err as Error).message}`);
  }
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (!(name in env) && value !== undefined) env[name] = value;
  }
  return true;
}

/**
 * For entry points: ./.env under the environment (into process.env, as dotenv does, so the
 * processes npm start launches see the same values), then the config; or exit non-zero
 * naming the bad variable.
 */
export function loadConfigOrExit(): Config {
  try {
    applyEnvFile(process.env, DOTENV_FILE);
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** This process's environment with `extra` over it: what a process it starts runs with. */
export function environmentWith(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}
