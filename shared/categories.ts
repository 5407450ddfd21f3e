import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';
import type { ErrorDetail } from './errors.js';

// ajv-formats is CommonJS with an ES default in its typings; `.default` is the function either way
const addFormats = addFormatsModule.default;

/**
 * The categories file (CATEGORIES_FILE): per category, a payload schema checked at
 * submission and the processor that does the work. Read and validated once at start by
 * both processes; without a file every category gets the built-in processor and no schema.
 */
export type ProcessorKind = 'builtin' | 'module' | 'http';

export type ProcessorSpec =
  | { readonly kind: 'builtin' }
  /** `path` is absolute (the file names it relative to itself) */
  | { readonly kind: 'module'; readonly path: string }
  | {
      readonly kind: 'http';
      readonly url: string;
      /** the signing secret, read from the variable `secretEnv` names; null: requests are not signed */
      readonly secret: string | null;
      readonly secretEnv: string | null;
    };

export interface CategorySpec {
  /** null for the defaults that apply to unlisted categories */
  readonly category: string | null;
  readonly description: string | null;
  /** JSON Schema 2020-12 the payload must match; null: any object */
  readonly payloadSchema: Record<string, unknown> | null;
  readonly processor: ProcessorSpec;
  /** a processor running longer fails the attempt as transient */
  readonly timeoutMs: number;
}

export interface Categories {
  /** the file read, or null without CATEGORIES_FILE */
  readonly file: string | null;
  readonly unknownCategories: 'accept' | 'reject';
  readonly defaults: CategorySpec;
  /** the categories the file lists, in its order */
  readonly listed: ReadonlyMap<string, CategorySpec>;
  /** The spec a record of this category is processed with (its own, or the defaults). */
  specFor(category: string): CategorySpec;
  /**
   * What is wrong with a submission of this category: `unknown` when unlisted categories
   * are refused, else one detail per payload schema violation (none when it matches).
   */
  checkPayload(category: string, payload: unknown, field: string): ErrorDetail[] | 'unknown';
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 15 * 60_000;
const CATEGORY_NAME_MAX = 128;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A problem in the categories file; `category` is null when it is not about one category. */
export class CategoriesFileError extends Error {
  constructor(
    readonly file: string,
    readonly category: string | null,
    readonly problem: string,
  ) {
    super(`${file}: ${category === null ? '' : `category "${category}": `}${problem}`);
    this.name = 'CategoriesFileError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

const BUILTIN: ProcessorSpec = Object.freeze({ kind: 'builtin' });

/** Without a file: every category is processed by the built-in rule and accepted as it is. */
export function defaultCategories(): Categories {
  const defaults: CategorySpec = Object.freeze({
    category: null,
    description: null,
    payloadSchema: null,
    processor: BUILTIN,
    timeoutMs: DEFAULT_TIMEOUT_MS,
  });
  return Object.freeze({
    file: null,
    unknownCategories: 'accept',
    defaults,
    listed: new Map(),
    specFor: () => defaults,
    checkPayload: () => [],
  });
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads, parses and validates a categories file; `env` gives the secrets it names. */
export function loadCategories(file: string, env: Readonly<Record<string, string | undefined>>): Categories {
  const fail = (category: string | null, problem: string): never => {
    throw new CategoriesFileError(file, category, problem);
  };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return fail(null, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  // YAML is a superset of JSON, so one parser reads both
  const parsed = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (parsed.errors.length > 0) return fail(null, `does not parse: ${parsed.errors[0]!.message}`);
  const doc: unknown = parsed.toJS();
  if (!isObject(doc)) return fail(null, 'must be a mapping with `categories` (and optionally `defaults`)');
  onlyKeys(doc, ['defaults', 'unknown_categories', 'categories'], (key) => fail(null, `unknown key "${key}"`));

  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictTuples: false });
  addFormats(ajv);
  const baseDir = path.dirname(path.resolve(file));

  const rawDefaults = doc.defaults ?? {};
  if (!isObject(rawDefaults)) return fail(null, '`defaults` must be a mapping');
  onlyKeys(rawDefaults, ['processor', 'timeout_ms'], (key) => fail(null, `defaults: unknown key "${key}"`));
  const defaultTimeout = timeoutOf(rawDefaults.timeout_ms, DEFAULT_TIMEOUT_MS, (p) => fail(null, `defaults: ${p}`));
  const defaultProcessor = processorOf(rawDefaults.processor ?? 'builtin', baseDir, env, (p) =>
    fail(null, `defaults: ${p}`),
  );
  const defaults: CategorySpec = Object.freeze({
    category: null,
    description: null,
    payloadSchema: null,
    processor: defaultProcessor.spec,
    timeoutMs: defaultProcessor.timeoutMs ?? defaultTimeout,
  });

  const unknownCategories = doc.unknown_categories ?? 'accept';
  if (unknownCategories !== 'accept' && unknownCategories !== 'reject') {
    return fail(null, '`unknown_categories` must be accept or reject');
  }

  const rawCategories = doc.categories ?? {};
  if (!isObject(rawCategories)) return fail(null, '`categories` must be a mapping of category name to its settings');
  const listed = new Map<string, CategorySpec>();
  const validators = new Map<string, ValidateFunction>();
  for (const [category, raw] of Object.entries(rawCategories)) {
    const bad = (problem: string) => fail(category, problem);
    if (category.length === 0 || category.length > CATEGORY_NAME_MAX) {
      bad(`a category name is 1-${CATEGORY_NAME_MAX} characters`);
    }
    const settings = raw ?? {};
    if (!isObject(settings)) return bad('must be a mapping (description, payload_schema, processor, timeout_ms)');
    onlyKeys(settings, ['description', 'payload_schema', 'processor', 'timeout_ms'], (key) =>
      bad(`unknown key "${key}"`),
    );
    if (settings.description !== undefined && typeof settings.description !== 'string') {
      bad('description must be a string');
    }
    let payloadSchema: Json | null = null;
    if (settings.payload_schema !== undefined) {
      if (!isObject(settings.payload_schema)) return bad('payload_schema must be a JSON Schema object');
      payloadSchema = settings.payload_schema;
      try {
        validators.set(category, ajv.compile(payloadSchema));
      } catch (err) {
        bad(`payload_schema is not a valid JSON Schema 2020-12: ${(err as Error).message}`);
      }
    }
    const timeout = timeoutOf(settings.timeout_ms, defaultTimeout, bad);
    const processor =
      settings.processor === undefined
        ? { spec: defaults.processor, timeoutMs: null }
        : processorOf(settings.processor, baseDir, env, bad);
    listed.set(
      category,
      Object.freeze({
        category,
        description: (settings.description as string | undefined) ?? null,
        payloadSchema,
        processor: processor.spec,
        timeoutMs: processor.timeoutMs ?? timeout,
      }),
    );
  }

  return Object.freeze({
    file,
    unknownCategories,
    defaults,
    listed,
    specFor: (category: string) => listed.get(category) ?? defaults,
    checkPayload(category: string, payload: unknown, field: string): ErrorDetail[] | 'unknown' {
      if (!listed.has(category)) return unknownCategories === 'reject' ? 'unknown' : [];
      const validator = validators.get(category);
      if (!validator || validator(payload)) return [];
      return (validator.errors ?? []).map((e) => violation(e, field));
    },
  });
}

function onlyKeys(object: Json, allowed: readonly string[], bad: (key: string) => void): void {
  for (const key of Object.keys(object)) if (!allowed.includes(key)) bad(key);
}

function timeoutOf(value: unknown, fallback: number, bad: (problem: string) => void): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    bad(`timeout_ms must be an integer of 1-${MAX_TIMEOUT_MS} (milliseconds)`);
  }
  return value as number;
}

/** `builtin`, `{module: path}` or `{http: {url, timeout_ms?, secret_env?}}`; a module may also carry timeout_ms. */
function processorOf(
  value: unknown,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  bad: (problem: string) => never,
): { spec: ProcessorSpec; timeoutMs: number | null } {
  if (value === 'builtin') return { spec: BUILTIN, timeoutMs: null };
  const kinds = isObject(value) ? Object.keys(value).filter((k) => k !== 'timeout_ms') : [];
  if (!isObject(value) || kinds.length !== 1) {
    return bad('processor must be builtin, {module: <path>} or {http: {url, …}}');
  }
  const kind = kinds[0]!;
  const timeoutMs = value.timeout_ms === undefined ? null : timeoutOf(value.timeout_ms, 0, bad);
  if (kind === 'module') {
    if (typeof value.module !== 'string' || value.module === '') return bad('processor.module must be a file path');
    const file = path.resolve(baseDir, value.module);
    if (!fs.existsSync(file)) return bad(`processor.module: no file at ${file}`);
    return { spec: Object.freeze({ kind: 'module', path: file }), timeoutMs };
  }
  if (kind !== 'http') return bad(`unknown processor "${kind}" (builtin, module or http)`);
  const http = value.http;
  if (!isObject(http)) return bad('processor.http must be a mapping with url');
  onlyKeys(http, ['url', 'timeout_ms', 'secret_env'], (key) => bad(`processor.http: unknown key "${key}"`));
  if (typeof http.url !== 'string' || !isHttpUrl(http.url)) return bad('processor.http.url must be an http(s) URL');
  const httpTimeout = http.timeout_ms === undefined ? null : timeoutOf(http.timeout_ms, 0, bad);
  let secret: string | null = null;
  let secretEnv: string | null = null;
  if (http.secret_env !== undefined) {
    if (typeof http.secret_env !== 'string' || !ENV_NAME.test(http.secret_env)) {
      return bad('processor.http.secret_env must name an environment variable');
    }
    secretEnv = http.secret_env;
    secret = env[secretEnv] ?? '';
    if (secret === '') return bad(`processor.http.secret_env: ${secretEnv} is not set`);
  }
  return {
    spec: Object.freeze({ kind: 'http', url: http.url, secret, secretEnv }),
    timeoutMs: httpTimeout ?? timeoutMs,
  };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** One ajv violation as a detail: `field` the payload path in the API's dotted form. */
function violation(e: ErrorObject, field: string): ErrorDetail {
  const segments = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (e.keyword === 'required') segments.push(String((e.params as { missingProperty: string }).missingProperty));
  if (e.keyword === 'additionalProperties') {
    segments.push(String((e.params as { additionalProperty: string }).additionalProperty));
  }
  return {
    field: [field, ...segments].join('.'),
    message: e.message ?? 'does not match the payload schema',
    type: `payload_schema.${e.keyword}`,
  };
}
