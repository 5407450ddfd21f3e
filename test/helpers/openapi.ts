import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ERROR_CATALOGUE, type ErrorCode } from '../../shared/index.js';
import type { HttpAnswer } from './contract.js';

// ajv-formats is CommonJS with an ES default in its typings; `.default` is the function either way
const addFormats = addFormatsModule.default;

type Json = Record<string, unknown>;
interface ResponseObject {
  headers?: Record<string, { $ref?: string; required?: boolean; schema?: Json }>;
  content?: Record<string, { schema?: Json }>;
  $ref?: string;
}

/** A JSON pointer segment, URI-encoded as ajv wants it in a `$ref` fragment. */
const pointer = (...segments: string[]) =>
  segments.map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');

/**
 * Checks real answers against the OpenAPI document the API serves, and keeps count of
 * which documented answers were seen, so a test can insist that every one was.
 */
export class DocumentedResponses {
  private readonly ajv: Ajv;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: Array<{ template: string; pattern: RegExp; literal: number }>;
  /** `METHOD template status` of every answer checked; status is `default` for the catch-all */
  readonly seen = new Set<string>();
  /** codes seen through a `default` response */
  readonly defaultCodes = new Set<string>();

  constructor(readonly document: Json & { paths: Record<string, Record<string, Json>> }) {
    this.ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema(document, 'openapi.json');
    this.templates = Object.keys(document.paths).map((template) => ({
      template,
      pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+').replace(/\./g, '\\.')}$`),
      // a literal segment wins over a parameter (`/records/batch` over `/records/{id}`)
      literal: template.replace(/\{[^}]+\}/g, '').length,
    }));
  }

  /** Every documented answer other than `default`: `METHOD template status`. */
  documented(): string[] {
    const out: string[] = [];
    for (const [template, item] of Object.entries(this.document.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const status of Object.keys((op as { responses: Json }).responses)) {
          if (status !== 'default') out.push(`${method.toUpperCase()} ${template} ${status}`);
        }
      }
    }
    return out.sort();
  }

  templateFor(path: string): string | null {
    const matches = this.templates.filter((t) => t.pattern.test(path)).sort((a, b) => b.literal - a.literal);
    return matches[0]?.template ?? null;
  }

  private validator(ref: string): ValidateFunction {
    let fn = this.compiled.get(ref);
    if (!fn) {
      fn = this.ajv.compile({ $ref: `openapi.json#/${ref}` });
      this.compiled.set(ref, fn);
    }
    return fn;
  }

  private resolve(ref: string): unknown {
    return ref
      .replace(/^#\//, '')
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<unknown>((node, key) => (node as Json)[key], this.document);
  }

  /**
   * What is wrong with this answer to `method path` by the document; null when nothing.
   * Unknown paths are checked against the generic error body.
   */
  problem(method: string, url: string, res: HttpAnswer & { text?: string }): string | null {
    const path = url.split('?')[0]!;
    const template = this.templateFor(path);
    const op = template ? (this.document.paths[template]![method.toLowerCase()] as Json | undefined) : undefined;
    if (!template || !op) {
      // no operation: 404 NOT_FOUND or 405 METHOD_NOT_ALLOWED, as any error body
      const fn = this.validator(pointer('components', 'schemas', 'Error'));
      return fn(res.body) ? null : `${res.status} body: ${this.ajv.errorsText(fn.errors)}`;
    }
    const responses = op.responses as Record<string, ResponseObject>;
    const statusKey = responses[String(res.status)] ? String(res.status) : 'default';
    let response = responses[statusKey];
    if (!response) return `${method} ${template}: status ${res.status} is not documented`;
    let base = pointer('paths', template, method.toLowerCase(), 'responses', statusKey);
    if (response.$ref) {
      base = response.$ref.replace(/^#\//, '');
      response = this.resolve(response.$ref) as ResponseObject;
    }

    const problems: string[] = [];
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const spec = (header.$ref ? this.resolve(header.$ref) : header) as { required?: boolean; schema?: Json };
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) {
        if (spec.required) problems.push(`header ${name} missing`);
        continue;
      }
      const typed = spec.schema?.type === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
      const fn = this.ajv.compile(spec.schema ?? {});
      if (!fn(typed)) problems.push(`header ${name}=${value}: ${this.ajv.errorsText(fn.errors)}`);
    }

    const contentType = (res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const media = response.content?.[contentType];
    if (!response.content) {
      if (res.text) problems.push('a body where none is documented');
    } else if (!media) {
      problems.push(`content type ${contentType || '(none)'} is not one of ${Object.keys(response.content ?? {})}`);
    } else if (contentType === 'application/json') {
      const fn = this.validator(`${base}/${pointer('content', 'application/json', 'schema')}`);
      if (!fn(res.body)) problems.push(`body: ${this.describe(fn.errors)}`);
    } else if (typeof (res.text ?? '') !== 'string' || (res.text ?? '') === '') {
      problems.push('empty body');
    }

    if (problems.length > 0) return `${method} ${path} → ${res.status}: ${problems.join('; ')}`;
    this.seen.add(`${method.toUpperCase()} ${template} ${statusKey}`);
    if (statusKey === 'default') {
      const code = (res.body as { error?: { code?: string } }).error?.code ?? '';
      if (ERROR_CATALOGUE[code as ErrorCode]?.status !== res.status) return `code ${code} with status ${res.status}`;
      this.defaultCodes.add(code);
    }
    return null;
  }

  private describe(errors: ErrorObject[] | null | undefined): string {
    return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('; ');
  }
}
