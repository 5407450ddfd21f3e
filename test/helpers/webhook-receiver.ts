import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedDelivery {
  headers: Record<string, string>;
  body: string;
  json: { type: string; timestamp: string; data: { record: { id: string; status: string; category: string } } };
  at: number;
}

export interface WebhookReceiver {
  url: string;
  received: ReceivedDelivery[];
  /** decides each answer's status (200 by default); `n` counts the requests so far, this one included */
  respond: (delivery: ReceivedDelivery, n: number) => number;
  /** Resolves once `count` requests arrived that `filter` accepts. */
  waitFor(count: number, filter?: (d: ReceivedDelivery) => boolean, timeoutMs?: number): Promise<ReceivedDelivery[]>;
  close(): Promise<void>;
}

/** A real HTTP receiver on loopback that keeps every request it gets. */
export async function startWebhookReceiver(path = '/hook'): Promise<WebhookReceiver> {
  const received: ReceivedDelivery[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const delivery: ReceivedDelivery = {
        headers: req.headers as Record<string, string>,
        body,
        json: JSON.parse(body) as ReceivedDelivery['json'],
        at: Date.now(),
      };
      received.push(delivery);
      res.statusCode = receiver.respond(delivery, received.length);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}${path}`,
    received,
    respond: () => 200,
    async waitFor(count, filter = () => true, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matching = received.filter(filter);
        if (matching.length >= count) return matching;
        if (Date.now() > deadline) {
          throw new Error(`${matching.length} of ${count} deliveries after ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return receiver;
}
