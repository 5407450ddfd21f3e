import type Joi from 'joi';
import joiToSwaggerModule from 'joi-to-swagger';
import {
  ERROR_CATALOGUE,
  errorBodySchema,
  errorBodySchemaFor,
  type Categories,
  type ErrorCode,
} from '../../shared/index.js';
import { ACCESS_ERRORS, ERROR_NOTES, OPERATIONS, type HeaderName, type OperationSpec } from './operations.js';

// a CommonJS module whose typings declare an ES default export; it sets both, so
// `.default` is the function for the type checker and at run time alike
const joiToSwagger = joiToSwaggerModule.default;

type JsonSchema = Record<string, unknown>;
export type OpenApiDocument = Record<string, unknown> & {
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, JsonSchema> } & Record<string, unknown>;
};

/** `required`: always sent with the answers that list it. */
const HEADERS: Record<HeaderName, { description: string; required: boolean; schema: JsonSchema }> = {
  'X-Request-ID': {
    required: true,
    description:
      "the request's id: the client's X-Request-ID when it is 1-128 characters of `A-Z a-z 0-9 . _ : -`, " +
      'else a new UUID; also in every error body and log line',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  },
  Location: { description: 'the record: `/records/{id}`', required: true, schema: { type: 'string' } },
  'Idempotent-Replayed': {
    required: false,
    description: '`true` when this is the stored first response to the Idempotency-Key',
    schema: { type: 'string', enum: ['true'] },
  },
  'Preference-Applied': { description: 'the `wait=N` honoured', required: false, schema: { type: 'string' } },
  'WWW-Authenticate': {
    required: true,
    description: '`Bearer realm="workflow-service"`, with `error="invalid_token"` when a wrong key was sent',
    schema: { type: 'string' },
  },
  'Retry-After': {
    description: 'seconds until the rate-limit window ends',
    required: true,
    schema: { type: 'integer', minimum: 0 },
  },
};

/** Headers an error answer carries because of its code. */
const ERROR_HEADERS: Partial<Record<ErrorCode, HeaderName>> = {
  UNAUTHORIZED: 'WWW-Authenticate',
  RATE_LIMITED: 'Retry-After',
};

/** Joi → OpenAPI schema; named schemas (`meta({className})`) are collected as components. */
class SchemaConverter {
  readonly components: Record<string, JsonSchema> = {};

  convert(schema: Joi.Schema): JsonSchema {
    const { swagger, components } = joiToSwagger(schema, { schemas: this.components });
    Object.assign(this.components, components?.schemas ?? {});
    return swagger as JsonSchema;
  }
}

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });

function headerRefs(names: readonly HeaderName[]): Record<string, unknown> {
  return Object.fromEntries(['X-Request-ID' as const, ...names].map((n) => [n, ref('headers', n)]));
}

function errorDescription(codes: readonly ErrorCode[]): string {
  return codes.map((c) => `\`${c}\`: ${ERROR_NOTES[c] ?? ERROR_CATALOGUE[c].message}`).join('; ');
}

function errorExamples(codes: readonly ErrorCode[]): Record<string, unknown> {
  return Object.fromEntries(
    codes.map((code) => [
      code,
      {
        summary: ERROR_CATALOGUE[code].message,
        value: {
          error: { code, message: ERROR_CATALOGUE[code].message },
          request_id: '0b6c1a8e-5e2f-4b8e-9d43-6f1f0e2f7a51',
        },
      },
    ]),
  );
}

/**
 * One response for all of an operation's errors of one status: the error body with
 * its code limited to these, so a client (and the response tests) know which to expect.
 */
function errorResponse(codes: readonly ErrorCode[], convert: SchemaConverter): Record<string, unknown> {
  const headers = codes.flatMap((c) => (ERROR_HEADERS[c] ? [ERROR_HEADERS[c]] : []));
  return {
    description: errorDescription(codes),
    headers: headerRefs([...new Set(headers)]),
    content: {
      'application/json': { schema: convert.convert(errorBodySchemaFor(codes)), examples: errorExamples(codes) },
    },
  };
}

function parameters(op: OperationSpec, convert: SchemaConverter): unknown[] {
  const out: unknown[] = [];
  for (const [name, p] of Object.entries(op.pathParams ?? {})) {
    out.push({ name, in: 'path', required: true, description: p.description, schema: convert.convert(p.schema) });
  }
  if (op.query) {
    const object = convert.convert(op.query) as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, schema] of Object.entries(object.properties ?? {})) {
      const { description, ...rest } = schema;
      out.push({
        name,
        in: 'query',
        required: object.required?.includes(name) ?? false,
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  for (const [name, p] of Object.entries(op.headers ?? {})) {
    out.push({
      name,
      in: 'header',
      required: p.required ?? false,
      description: p.description,
      schema: convert.convert(p.schema),
    });
  }
  out.push(ref('parameters', 'XRequestId'));
  return out;
}

/** Operations whose body carries records: their description shows each category's payload schema. */
const RECORD_WRITES = new Set(['createRecord', 'createRecords']);

/** The payload schemas of the categories file, as Markdown, for client generators and readers. */
function payloadSchemasNote(categories: Categories | undefined): string {
  const withSchema = [...(categories?.listed.values() ?? [])].filter((c) => c.payloadSchema !== null);
  const lines = withSchema.map((c) => `- \`${c.category}\`: \`${JSON.stringify(c.payloadSchema)}\``);
  const unknown =
    categories?.unknownCategories === 'reject' ? ' A category the file does not list is 422 `UNKNOWN_CATEGORY`.' : '';
  if (lines.length === 0) return unknown.trim();
  return [
    `A record's \`payload\` must match its category's JSON Schema (2020-12); each violation is one detail of a 422 ` +
      `\`VALIDATION_ERROR\`, and nothing is stored.${unknown}`,
    '',
    ...lines,
  ].join('\n');
}

function operation(op: OperationSpec, convert: SchemaConverter, note = ''): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(op.responses)) {
    const content: Record<string, unknown> | null = r.contentType
      ? { [r.contentType]: { schema: { type: 'string' } } }
      : r.schema
        ? { 'application/json': { schema: convert.convert(r.schema) } }
        : null;
    if (r.csv && content)
      content['text/csv'] = { schema: { type: 'string', description: 'RFC 4180, with a header row' } };
    responses[status] = {
      description: r.description,
      headers: headerRefs(r.headers ?? []),
      ...(content ? { content } : {}),
    };
  }
  const codes = [...new Set([...ACCESS_ERRORS[op.access], ...(op.errors ?? [])])];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CATALOGUE[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, statusCodes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = errorResponse(statusCodes, convert);
  }
  responses.default = ref('responses', 'UnexpectedError');

  const keyed = op.access !== 'public';
  return {
    operationId: op.operationId,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description || note ? { description: [op.description, note].filter(Boolean).join('\n\n') } : {}),
    // an empty alternative: keys are needed only when API_KEYS is set
    security: keyed ? [{ apiKey: [] }, { bearer: [] }, {}] : [],
    parameters: parameters(op, convert),
    ...(op.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: convert.convert(op.body) } } } }
      : {}),
    responses,
  };
}

function errorCatalogueTable(): string {
  const rows = (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).map(
    (code) =>
      `| \`${code}\` | ${ERROR_CATALOGUE[code].status} | ${ERROR_NOTES[code] ?? ERROR_CATALOGUE[code].message} |`,
  );
  return ['| code | status | when |', '|---|---|---|', ...rows].join('\n');
}

const DESCRIPTION = `Records in, an explicit state machine (\`pending → processed | failed\`, and an operator's
\`failed → pending\`) run by BullMQ workers, reports out.

**Errors.** Every error, unknown routes (404 \`NOT_FOUND\`) and methods (405 \`METHOD_NOT_ALLOWED\`, with \`Allow\`)
included, is \`{"error": {"code", "message", "details"?}, "request_id"}\` with the \`X-Request-ID\` header equal to
\`request_id\`. The codes:

${errorCatalogueTable()}

**Keys.** With API_KEYS set, every write and everything under \`/admin\` and \`/webhooks\` needs
\`X-API-Key: <key>\` or \`Authorization: Bearer <key>\`; other reads stay public.`;

/**
 * The OpenAPI 3.0 document, generated from the operations table and the Joi schemas; with
 * the categories file, the record writes also describe its payload schemas.
 */
export function buildOpenApiDocument(version: string, categories?: Categories): OpenApiDocument {
  const note = payloadSchemasNote(categories);
  const convert = new SchemaConverter();
  const anyError = convert.convert(errorBodySchema);
  const paths: OpenApiDocument['paths'] = {};
  for (const op of OPERATIONS) {
    paths[op.path] ??= {};
    paths[op.path]![op.method] = operation(op, convert, RECORD_WRITES.has(op.operationId) ? note : '');
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'workflow-service',
      version,
      description: DESCRIPTION,
      license: { name: 'MIT', url: 'https://spdx.org/licenses/MIT.html' },
    },
    servers: [{ url: '/', description: 'this service' }],
    tags: [
      { name: 'records', description: 'store records and move them through the state machine' },
      { name: 'reports', description: 'what happened' },
      { name: 'webhooks', description: 'being told: signed webhook deliveries and the live event stream' },
      { name: 'operations', description: 'health, version, metrics, this document and the queue UI' },
    ],
    paths,
    components: {
      schemas: convert.components,
      parameters: {
        XRequestId: {
          name: 'X-Request-ID',
          in: 'header',
          required: false,
          description: 'echoed when it is 1-128 characters of `A-Z a-z 0-9 . _ : -`; otherwise a UUID is made',
          schema: { type: 'string' },
        },
      },
      headers: HEADERS,
      responses: {
        // the generic error body: its code is whatever the status calls for
        UnexpectedError: {
          description: errorDescription(['INTERNAL_ERROR', 'SERVICE_UNAVAILABLE']),
          headers: headerRefs([]),
          content: {
            'application/json': {
              schema: anyError,
              examples: errorExamples(['INTERNAL_ERROR', 'SERVICE_UNAVAILABLE']),
            },
          },
        },
      },
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'one of API_KEYS' },
        bearer: { type: 'http', scheme: 'bearer', description: 'one of API_KEYS as a bearer token' },
      },
    },
  };
}
