// An HTTP processor for the `invoice` category of examples/categories.yaml: plain Node, no
// dependencies. The worker POSTs {record, attempt}; a 2xx JSON object is the record's result,
// a 4xx fails it with the body's `error`, a 5xx or 429 is retried (Retry-After honoured).
//   PORT=4010 INVOICE_PROCESSOR_SECRET=whsec_... node examples/http-processor.js
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const port = Number(process.env.PORT ?? 4010);
const secret = process.env.INVOICE_PROCESSOR_SECRET ?? '';
const APPROVAL_LIMIT = 10_000;
const CURRENCIES = new Set(['EUR', 'USD', 'GBP']);
const TOLERANCE_SECONDS = 300;

/** Standard Webhooks: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">, with a whsec_ secret base64-decoded. */
function signatureValid(headers, body) {
  const id = headers['webhook-id'];
  const timestamp = Number(headers['webhook-timestamp']);
  const signatures = String(headers['webhook-signature'] ?? '').split(' ');
  if (!id || !Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > TOLERANCE_SECONDS) return false;
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const expected = Buffer.from(`v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`);
  return signatures.some((s) => s.length === expected.length && timingSafeEqual(Buffer.from(s), expected));
}

function decide({ record, attempt }) {
  const { amount, currency, supplier } = record.payload;
  if (supplier === 'flaky-supplier' && attempt === 1) {
    return [503, { error: 'ledger busy, try again' }, { 'retry-after': '1' }];
  }
  if (!CURRENCIES.has(currency)) return [422, { error: `currency ${currency} is not supported` }];
  if (amount > APPROVAL_LIMIT)
    return [422, { error: `amount ${amount} is over the approval limit of ${APPROVAL_LIMIT}` }];
  return [200, { approved: true, amount, currency, supplier, approved_at: new Date().toISOString() }];
}

const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    const reply = (status, answer, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(answer));
      console.log(`${req.method} ${req.url} ${status} ${req.headers['x-request-id'] ?? ''}`);
    };
    if (req.method !== 'POST' || req.url !== '/invoices') return reply(404, { error: 'not found' });
    if (secret && !signatureValid(req.headers, body)) return reply(401, { error: 'signature does not verify' });
    try {
      reply(...decide(JSON.parse(body)));
    } catch {
      reply(400, { error: 'body is not the JSON the service sends' });
    }
  });
});

server.listen(port, '127.0.0.1', () => console.log(`invoice processor listening on http://127.0.0.1:${port}/invoices`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
