import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * How a subscription's signing secret is stored. With WEBHOOK_SECRET_KEY set it is
 * encrypted with AES-256-GCM under that key (`v1:<iv>:<tag>:<ciphertext>`, base64), so
 * a dump of the database alone cannot sign a delivery; without it, it is stored as is
 * (`plain:<secret>`), which the processes warn about at start.
 */
export interface SecretBox {
  seal(secret: string): string;
  /** the secret, or an error naming why it cannot be read (a missing or different key) */
  open(stored: string): string;
  readonly encrypts: boolean;
}

const PLAIN = 'plain:';
const SEALED = 'v1:';

/** WEBHOOK_SECRET_KEY: 32 bytes, written as 64 hex digits or base64. */
export function parseSecretKey(text: string): Buffer {
  const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) throw new Error('must be 32 bytes, as 64 hex digits or base64');
  return key;
}

export function createSecretBox(key: Buffer | null): SecretBox {
  return {
    encrypts: key !== null,
    seal(secret) {
      if (!key) return `${PLAIN}${secret}`;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const text = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
      return `${SEALED}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${text.toString('base64')}`;
    },
    open(stored) {
      if (stored.startsWith(PLAIN)) return stored.slice(PLAIN.length);
      if (!key) throw new Error('the secret is encrypted and WEBHOOK_SECRET_KEY is not set');
      const [iv = '', tag = '', text = ''] = stored.slice(SEALED.length).split(':');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
        decipher.setAuthTag(Buffer.from(tag, 'base64'));
        return Buffer.concat([decipher.update(Buffer.from(text, 'base64')), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('the secret cannot be decrypted with this WEBHOOK_SECRET_KEY');
      }
    },
  };
}
