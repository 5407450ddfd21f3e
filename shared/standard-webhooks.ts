import { createHmac, randomBytes } from 'node:crypto';

/**
 * Signing as the Standard Webhooks specification defines it: HMAC-SHA256 over
 * `<id>.<timestamp>.<body>`, sent as `webhook-signature: v1,<base64>`. Used for the
 * requests of HTTP processors and for webhook deliveries alike.
 */
const SECRET_PREFIX = 'whsec_';

/** The key bytes of a secret: `whsec_<base64>` is decoded, any other text is used as its UTF-8 bytes. */
export function secretKey(secret: string): Buffer {
  return secret.startsWith(SECRET_PREFIX)
    ? Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64')
    : Buffer.from(secret, 'utf8');
}

/** A new secret in the specification's form: `whsec_` and 32 random bytes in base64. */
export function generateSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

/** `v1,<base64 HMAC>` for one secret; several secrets (a rotation) give space-separated signatures. */
export function signPayload(
  secrets: string | readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  const message = `${id}.${timestampSeconds}.${body}`;
  return (typeof secrets === 'string' ? [secrets] : secrets)
    .map((secret) => `v1,${createHmac('sha256', secretKey(secret)).update(message).digest('base64')}`)
    .join(' ');
}

/** The three headers of a signed request (only `webhook-id` and `webhook-timestamp` without a secret). */
export function webhookHeaders(
  secrets: string | readonly string[] | null,
  id: string,
  body: string,
  now = Date.now(),
): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  const headers: Record<string, string> = { 'webhook-id': id, 'webhook-timestamp': String(timestamp) };
  const some = secrets !== null && (typeof secrets === 'string' || secrets.length > 0);
  if (some) headers['webhook-signature'] = signPayload(secrets, id, timestamp, body);
  return headers;
}
