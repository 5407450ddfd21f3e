// A webhook receiver to start from: verifies each delivery's Standard Webhooks signature
// and handles each webhook-id once. Node.js 20+, no dependencies.
//
//   WEBHOOK_SECRET=whsec_… PORT=4000 node examples/webhook-receiver.mjs
//
// Then subscribe it (WEBHOOK_ALLOW_PRIVATE_URLS=true lets the service reach localhost):
//   curl -X POST localhost:3000/webhooks -H 'content-type: application/json' \
//     -d '{"url":"http://127.0.0.1:4000/","events":["record.processed","record.failed"]}'
/* global process, console, Buffer -- a plain Node.js script */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const secret = process.env.WEBHOOK_SECRET ?? '';
if (!secret.startsWith('whsec_')) {
  console.error('set WEBHOOK_SECRET to the whsec_… secret POST /webhooks answered');
  process.exit(1);
}
const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
const TOLERANCE_SECONDS = 5 * 60;
// ids already handled; a real receiver keeps them in its database, in the transaction that acts on the event
const seen = new Set();

/** True when one of the `v1,<base64>` signatures is the HMAC of `<id>.<timestamp>.<body>`. */
function verify(id, timestamp, signatures, body) {
  const age = Math.abs(Date.now() / 1000 - Number(timestamp));
  if (!id || !Number.isFinite(age) || age > TOLERANCE_SECONDS) return false;
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return String(signatures)
    .split(' ')
    .some((s) => {
      const [version, value = ''] = s.split(',');
      const given = Buffer.from(value, 'base64');
      return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const id = req.headers['webhook-id'];
    if (!verify(id, req.headers['webhook-timestamp'], req.headers['webhook-signature'], body)) {
      res.writeHead(401).end('bad signature');
      return;
    }
    if (seen.has(id)) {
      // a retry of one already handled: acknowledge it again, act on it once
      res.writeHead(200).end('duplicate');
      console.log(JSON.stringify({ id, duplicate: true }));
      return;
    }
    seen.add(id);
    const event = JSON.parse(body);
    console.log(
      JSON.stringify({ id, type: event.type, record: event.data.record.id, status: event.data.record.status }),
    );
    res.writeHead(204).end();
  });
});
server.listen(Number(process.env.PORT ?? 4000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`webhook receiver listening on ${JSON.stringify(server.address())}`);
});
process.on('SIGTERM', () => server.close());
process.on('SIGINT', () => server.close());
