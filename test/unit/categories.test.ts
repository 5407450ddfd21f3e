import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import {
  CategoriesFileError,
  ConfigError,
  DEFAULT_TIMEOUT_MS,
  defaultCategories,
  loadCategories,
  loadConfig,
} from '../../shared/index.js';

describe('categories file', () => {
  let dir: string;
  let n = 0;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'categories-'));
    fs.writeFileSync(path.join(dir, 'lead.js'), 'export default () => ({ ok: true });\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (text: string, ext = 'yaml') => {
    const file = path.join(dir, `c${++n}.${ext}`);
    fs.writeFileSync(file, text);
    return file;
  };

  /** The problem the loader reports for this file text, or null when it loads. */
  function problemOf(text: string, env: Record<string, string> = {}): { category: string | null; problem: string } {
    const file = write(text);
    try {
      loadCategories(file, env);
    } catch (err) {
      expect(err).to.be.instanceOf(CategoriesFileError);
      const e = err as CategoriesFileError;
      expect(e.file).to.equal(file);
      expect(e.message.startsWith(`${file}: `)).to.equal(true);
      if (e.category !== null) expect(e.message).to.include(`category "${e.category}"`);
      return { category: e.category, problem: e.problem };
    }
    throw new Error('the file loaded');
  }

  describe('loads', () => {
    it('the contract example, YAML', () => {
      const file = write(`
defaults:
  processor: builtin
  timeout_ms: 7000
unknown_categories: reject
categories:
  invoice:
    description: Supplier invoices to approve
    payload_schema:
      type: object
      required: [amount, currency]
      properties:
        amount: { type: number, minimum: 0 }
        currency: { type: string, pattern: "^[A-Z]{3}$" }
    processor:
      http:
        url: https://billing.example/approve
        timeout_ms: 5000
        secret_env: INVOICE_WEBHOOK_SECRET
  lead:
    processor:
      module: ./lead.js
  plain:
`);
      const c = loadCategories(file, { INVOICE_WEBHOOK_SECRET: 'whsec_c2VjcmV0' });
      expect(c.file).to.equal(file);
      expect(c.unknownCategories).to.equal('reject');
      expect([...c.listed.keys()]).to.deep.equal(['invoice', 'lead', 'plain']);
      expect(c.specFor('invoice')).to.deep.include({
        description: 'Supplier invoices to approve',
        timeoutMs: 5000,
        processor: {
          kind: 'http',
          url: 'https://billing.example/approve',
          secret: 'whsec_c2VjcmV0',
          secretEnv: 'INVOICE_WEBHOOK_SECRET',
        },
      });
      expect(c.specFor('lead').processor).to.deep.equal({ kind: 'module', path: path.join(dir, 'lead.js') });
      expect(c.specFor('lead').timeoutMs).to.equal(7000);
      expect(c.specFor('plain')).to.deep.include({ processor: { kind: 'builtin' }, payloadSchema: null });
      expect(c.specFor('other')).to.equal(c.defaults);
      expect(c.defaults.timeoutMs).to.equal(7000);
    });

    it('JSON, with a module processor as the default and its own timeout', () => {
      const file = write(
        JSON.stringify({ defaults: { processor: { module: 'lead.js', timeout_ms: 300 } }, categories: {} }),
        'json',
      );
      const c = loadCategories(file, {});
      expect(c.defaults.processor).to.deep.equal({ kind: 'module', path: path.join(dir, 'lead.js') });
      expect(c.defaults.timeoutMs).to.equal(300);
      expect(c.unknownCategories).to.equal('accept');
      expect(c.checkPayload('anything', {}, 'body.payload')).to.deep.equal([]);
    });

    it('an http processor without a secret is not signed', () => {
      const c = loadCategories(
        write('categories:\n  a:\n    processor: { http: { url: "http://127.0.0.1:1/x" } }\n'),
        {},
      );
      expect(c.specFor('a').processor).to.deep.equal({
        kind: 'http',
        url: 'http://127.0.0.1:1/x',
        secret: null,
        secretEnv: null,
      });
      expect(c.specFor('a').timeoutMs).to.equal(DEFAULT_TIMEOUT_MS);
    });

    it('without a file: builtin for every category, nothing checked', () => {
      const c = defaultCategories();
      expect(c.file).to.equal(null);
      expect(c.specFor('x')).to.deep.include({ processor: { kind: 'builtin' }, timeoutMs: DEFAULT_TIMEOUT_MS });
      expect(c.checkPayload('x', { anything: 1 }, 'body.payload')).to.deep.equal([]);
      expect(loadConfig({}).categories.file).to.equal(null);
    });
  });

  describe('payload checks', () => {
    const text = `
unknown_categories: reject
categories:
  invoice:
    payload_schema:
      type: object
      required: [amount, currency]
      additionalProperties: false
      properties:
        amount: { type: number, minimum: 0 }
        currency: { type: string, pattern: "^[A-Z]{3}$" }
        due: { type: string, format: date }
        lines: { type: array, items: { type: object, properties: { "a/b": { type: integer } } } }
  free:
`;
    it('one detail per violation, each with its path', () => {
      const c = loadCategories(write(text), {});
      const details = c.checkPayload(
        'invoice',
        { amount: -1, due: 'tomorrow', lines: [{ 'a/b': 1.5 }], extra: 1 },
        'body.payload',
      );
      expect(details).to.deep.include.members([
        {
          field: 'body.payload.currency',
          message: "must have required property 'currency'",
          type: 'payload_schema.required',
        },
        {
          field: 'body.payload.extra',
          message: 'must NOT have additional properties',
          type: 'payload_schema.additionalProperties',
        },
        { field: 'body.payload.amount', message: 'must be >= 0', type: 'payload_schema.minimum' },
        { field: 'body.payload.due', message: 'must match format "date"', type: 'payload_schema.format' },
        { field: 'body.payload.lines.0.a/b', message: 'must be integer', type: 'payload_schema.type' },
      ]);
      expect(details).to.have.length(5);
      expect(
        c.checkPayload('invoice', { amount: 3, currency: 'EUR', due: '2026-01-31' }, 'body.payload'),
      ).to.deep.equal([]);
      expect(c.checkPayload('free', { x: 1 }, 'body.payload')).to.deep.equal([]);
    });

    it('unknown_categories: reject refuses an unlisted category; accept lets it through', () => {
      expect(loadCategories(write(text), {}).checkPayload('nope', {}, 'body.payload')).to.equal('unknown');
      const accept = loadCategories(write(text.replace('reject', 'accept')), {});
      expect(accept.checkPayload('nope', {}, 'body.payload')).to.deep.equal([]);
    });
  });

  describe('refuses, naming the file, the category and the problem', () => {
    it('a file that cannot be read', () => {
      const file = path.join(dir, 'missing.yaml');
      expect(() => loadCategories(file, {}))
        .to.throw(CategoriesFileError)
        .with.property('message', `${file}: cannot be read (ENOENT)`);
    });

    it('a file that does not parse', () => {
      expect(problemOf('categories: [a\n').problem).to.match(/^does not parse: /);
      expect(problemOf('{"categories": {').problem).to.match(/^does not parse: /);
      expect(problemOf('categories:\n  a: {}\n  a: {}\n').problem).to.match(/^does not parse: .*unique/i);
    });

    it('a document that is not a mapping', () => {
      expect(problemOf('- a\n- b\n')).to.deep.equal({
        category: null,
        problem: 'must be a mapping with `categories` (and optionally `defaults`)',
      });
      expect(problemOf('just text\n').category).to.equal(null);
    });

    it('an unknown top-level key', () => {
      expect(problemOf('categorys: {}\n')).to.deep.equal({ category: null, problem: 'unknown key "categorys"' });
    });

    it('bad defaults', () => {
      expect(problemOf('defaults: builtin\n').problem).to.equal('`defaults` must be a mapping');
      expect(problemOf('defaults: { retries: 3 }\n').problem).to.equal('defaults: unknown key "retries"');
      expect(problemOf('defaults: { timeout_ms: 0 }\n').problem).to.match(/^defaults: timeout_ms must be an integer/);
      expect(problemOf('defaults: { processor: lambda }\n').problem).to.match(/^defaults: processor must be builtin/);
    });

    it('unknown_categories other than accept or reject', () => {
      expect(problemOf('unknown_categories: drop\n')).to.deep.equal({
        category: null,
        problem: '`unknown_categories` must be accept or reject',
      });
    });

    it('categories that are not a mapping', () => {
      expect(problemOf('categories: [a, b]\n').problem).to.match(/^`categories` must be a mapping/);
    });

    it('a category name that is too long', () => {
      const name = 'x'.repeat(129);
      expect(problemOf(`categories:\n  ${name}: {}\n`)).to.deep.equal({
        category: name,
        problem: 'a category name is 1-128 characters',
      });
    });

    it("a category's settings that are not a mapping, or carry an unknown key", () => {
      expect(problemOf('categories:\n  a: 3\n').category).to.equal('a');
      expect(problemOf('categories:\n  a: { schema: {} }\n')).to.deep.equal({
        category: 'a',
        problem: 'unknown key "schema"',
      });
    });

    it('a description that is not a string', () => {
      expect(problemOf('categories:\n  a: { description: [1] }\n').problem).to.equal('description must be a string');
    });

    it('a timeout that is not a positive integer', () => {
      expect(problemOf('categories:\n  a: { timeout_ms: 1.5 }\n').problem).to.match(/^timeout_ms must be an integer/);
      expect(problemOf('categories:\n  a: { timeout_ms: "5s" }\n').category).to.equal('a');
      expect(problemOf('categories:\n  a: { processor: { module: ./lead.js, timeout_ms: -1 } }\n').problem).to.match(
        /^timeout_ms must be/,
      );
    });

    it('a payload schema that is not a JSON Schema 2020-12', () => {
      expect(problemOf('categories:\n  a: { payload_schema: [1] }\n').problem).to.equal(
        'payload_schema must be a JSON Schema object',
      );
      const wrongType = problemOf('categories:\n  a: { payload_schema: { type: objekt } }\n');
      expect(wrongType.category).to.equal('a');
      expect(wrongType.problem).to.match(/^payload_schema is not a valid JSON Schema 2020-12: schema is invalid/);
      expect(problemOf('categories:\n  a: { payload_schema: { type: object, requird: [x] } }\n').problem).to.include(
        'unknown keyword: "requird"',
      );
      expect(
        problemOf('categories:\n  a: { payload_schema: { $ref: "https://elsewhere.example/s.json" } }\n').problem,
      ).to.match(/^payload_schema is not a valid JSON Schema 2020-12: can't resolve reference/);
    });

    it('a processor that is none of builtin, module and http', () => {
      expect(problemOf('categories:\n  a: { processor: lambda }\n').problem).to.equal(
        'processor must be builtin, {module: <path>} or {http: {url, …}}',
      );
      expect(
        problemOf('categories:\n  a: { processor: { module: x.js, http: { url: "http://h" } } }\n').problem,
      ).to.match(/^processor must be builtin/);
      expect(problemOf('categories:\n  a: { processor: { lambda: arn } }\n').problem).to.equal(
        'unknown processor "lambda" (builtin, module or http)',
      );
    });

    it('a module that is not a path, or names no file', () => {
      expect(problemOf('categories:\n  a: { processor: { module: 3 } }\n').problem).to.equal(
        'processor.module must be a file path',
      );
      expect(problemOf('categories:\n  a: { processor: { module: ./gone.js } }\n').problem).to.equal(
        `processor.module: no file at ${path.join(dir, 'gone.js')}`,
      );
    });

    it('an http processor without a mapping, with an unknown key or a URL that is not http(s)', () => {
      expect(problemOf('categories:\n  a: { processor: { http: "http://h" } }\n').problem).to.equal(
        'processor.http must be a mapping with url',
      );
      expect(problemOf('categories:\n  a: { processor: { http: { url: "http://h", secret: s } } }\n').problem).to.equal(
        'processor.http: unknown key "secret"',
      );
      for (const url of ['ftp://h/x', 'not a url', '3']) {
        expect(problemOf(`categories:\n  a: { processor: { http: { url: "${url}" } } }\n`).problem).to.equal(
          'processor.http.url must be an http(s) URL',
        );
      }
      expect(
        problemOf('categories:\n  a: { processor: { http: { url: "http://h", timeout_ms: 0 } } }\n').problem,
      ).to.match(/^timeout_ms must be/);
    });

    it('a secret_env that is not a variable name, or is not set', () => {
      const http = (secretEnv: string) =>
        `categories:\n  a: { processor: { http: { url: "http://h", secret_env: "${secretEnv}" } } }\n`;
      expect(problemOf(http('not-a-name')).problem).to.equal(
        'processor.http.secret_env must name an environment variable',
      );
      expect(problemOf(http('HOOK_SECRET'))).to.deep.equal({
        category: 'a',
        problem: 'processor.http.secret_env: HOOK_SECRET is not set',
      });
      expect(problemOf(http('HOOK_SECRET'), { HOOK_SECRET: '' }).problem).to.match(/is not set$/);
    });
  });

  it('through the configuration: CATEGORIES_FILE is read with the environment, a bad one names itself', () => {
    const file = write('categories:\n  a: { processor: { http: { url: "http://h", secret_env: S } } }\n');
    expect(loadConfig({ CATEGORIES_FILE: file, S: 'shh' }).categories.specFor('a').processor).to.deep.include({
      secret: 'shh',
    });
    expect(() => loadConfig({ CATEGORIES_FILE: file }))
      .to.throw(ConfigError)
      .that.satisfies(
        (e: ConfigError) =>
          e.variable === 'CATEGORIES_FILE' &&
          e.message === `invalid CATEGORIES_FILE ${file}: category "a": processor.http.secret_env: S is not set`,
      );
  });
});
