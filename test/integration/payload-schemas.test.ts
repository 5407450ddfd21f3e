import { expect } from 'chai';
import fc from 'fast-check';
import { categoriesDir, type CategoriesDir } from '../helpers/categories.js';
import { expectContractError } from '../helpers/contract.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { DocumentedResponses } from '../helpers/openapi.js';

const FILE = `
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
        email: { type: string, format: email }
    processor:
      http:
        url: http://127.0.0.1:1/approve
        secret_env: INVOICE_SECRET
  lead:
    processor:
      module: ./lead.js
  note:
`;

describe('payload schemas and GET /categories', function () {
  this.timeout(60_000);
  let files: CategoriesDir;
  let h: Harness;
  let docs: DocumentedResponses;

  const invoice = (payload: object) => ({ source: 'erp', category: 'invoice', payload });
  const total = async () => ((await h.http.get('/records?limit=1').expect(200)).body as { total: number }).total;

  before(async () => {
    files = categoriesDir();
    files.write('lead.js', 'export default () => ({ ok: true });\n');
    const file = files.write('categories.yaml', FILE);
    h = await createHarness({ env: { CATEGORIES_FILE: file, INVOICE_SECRET: 'whsec_dG9wIHNlY3JldA==' } });
    docs = new DocumentedResponses((await h.http.get('/openapi.json').expect(200)).body);
  });
  after(async () => {
    await h?.close();
    files?.remove();
  });

  /** Every answer here is also checked against the OpenAPI document. */
  async function post(path: string, body: object) {
    const res = await h.http.post(path).send(body);
    expect(docs.problem('POST', path, res), res.text).to.equal(null);
    return res;
  }

  it('POST /records: each violation is one detail with its path, and nothing is stored', async () => {
    const res = await post('/records', invoice({ amount: -3, email: 'nope' }));
    expectContractError(res, 422, 'VALIDATION_ERROR');
    expect(res.body.error.details).to.have.deep.members([
      {
        field: 'body.payload.currency',
        message: "must have required property 'currency'",
        type: 'payload_schema.required',
      },
      { field: 'body.payload.amount', message: 'must be >= 0', type: 'payload_schema.minimum' },
      { field: 'body.payload.email', message: 'must match format "email"', type: 'payload_schema.format' },
    ]);
    expect(await total()).to.equal(0);

    const ok = await post('/records', invoice({ amount: 12.5, currency: 'EUR' }));
    expect(ok.status).to.equal(201);
    expect(ok.body).to.include({ category: 'invoice', status: 'pending' });
    expect(await total()).to.equal(1);
  });

  it('POST /records/batch: every item is checked, details name the index, and nothing is stored', async () => {
    const before = await total();
    const res = await post('/records/batch', {
      records: [
        invoice({ amount: 1, currency: 'USD' }),
        { source: 'crm', category: 'lead', payload: { anything: true } },
        invoice({ amount: 'ten', currency: 'usd' }),
      ],
    });
    expectContractError(res, 422, 'VALIDATION_ERROR');
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).to.deep.equal([
      'body.records.2.payload.amount',
      'body.records.2.payload.currency',
    ]);
    expect(await total()).to.equal(before);
    const ok = await post('/records/batch', { records: [invoice({ amount: 0, currency: 'JPY' })] });
    expect(ok.status).to.equal(201);
  });

  it('unknown_categories: reject answers 422 UNKNOWN_CATEGORY, single and batch', async () => {
    const before = await total();
    const single = await post('/records', { source: 's', category: 'invoices', payload: {} });
    expectContractError(single, 422, 'UNKNOWN_CATEGORY');
    expect(single.body.error.details).to.deep.equal([
      { field: 'body.category', message: 'category "invoices" is not listed' },
    ]);
    const batch = await post('/records/batch', {
      records: [
        { source: 's', category: 'note', payload: {} },
        { source: 's', category: 'other', payload: {} },
      ],
    });
    expectContractError(batch, 422, 'UNKNOWN_CATEGORY');
    expect(batch.body.error.details[0].field).to.equal('body.records.1.category');
    expect(await total()).to.equal(before);
  });

  it('GET /categories lists them without a URL, path or secret', async () => {
    const res = await h.http.get('/categories').expect(200);
    expect(docs.problem('GET', '/categories', res)).to.equal(null);
    expect(res.body.unknown_categories).to.equal('reject');
    expect(res.body.items).to.deep.equal([
      {
        category: 'invoice',
        description: 'Supplier invoices to approve',
        payload_schema: {
          type: 'object',
          required: ['amount', 'currency'],
          properties: {
            amount: { type: 'number', minimum: 0 },
            currency: { type: 'string', pattern: '^[A-Z]{3}$' },
            email: { type: 'string', format: 'email' },
          },
        },
        processor: 'http',
      },
      { category: 'lead', description: null, payload_schema: null, processor: 'module' },
      { category: 'note', description: null, payload_schema: null, processor: 'builtin' },
    ]);
    expect(res.text).not.to.match(/127\.0\.0\.1|lead\.js|whsec|dG9w|INVOICE_SECRET|categories-/);
  });

  it('the OpenAPI document shows each payload schema on the record writes, and no secret', async () => {
    const doc = docs.document as { paths: Record<string, { post?: { description: string } }> };
    for (const path of ['/records', '/records/batch']) {
      const description = doc.paths[path]!.post!.description;
      expect(description).to.include('`invoice`: `{"type":"object","required":["amount","currency"]');
      expect(description).to.include('422 `UNKNOWN_CATEGORY`');
      expect(description).not.to.include('`lead`');
    }
    // the document describes webhooks' own whsec_ secrets and loopback refusals: look for this file's values
    expect(JSON.stringify(docs.document)).not.to.match(/127\.0\.0\.1:1\/approve|lead\.js|whsec_dG9w|INVOICE_SECRET/);
  });

  it('fuzz: random payloads never get a 5xx, and a refused one stores nothing', async () => {
    const amount = fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(null), fc.boolean());
    const currency = fc.oneof(fc.constantFrom('EUR', 'USD', 'eur', 'EURO', ''), fc.string({ maxLength: 4 }));
    const payload = fc.oneof(
      fc.record({ amount, currency, email: fc.oneof(fc.emailAddress(), fc.string()) }, { requiredKeys: [] }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
    );
    const category = fc.constantFrom('invoice', 'invoice', 'lead', 'note', 'unlisted');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ category, payload }), { minLength: 1, maxLength: 4 }), async (items) => {
        const records = items.map((i) => ({ source: 'fuzz', ...i }));
        const before = await total();
        const single = records.length === 1;
        const res = await h.http.post(single ? '/records' : '/records/batch').send(single ? records[0]! : { records });
        expect(res.status, res.text).to.be.oneOf([201, 422]);
        expect(docs.problem('POST', single ? '/records' : '/records/batch', res), res.text).to.equal(null);
        const after = await total();
        expect(after - before).to.equal(res.status === 201 ? records.length : 0);
      }),
      { numRuns: 150 },
    );
  });
});
