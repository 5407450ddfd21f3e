import { expect } from 'chai';
import { createSecretBox, generateSecret, parseSecretKey } from '../../shared/index.js';
import { backoffDelay } from '../../worker/deliver-webhook.js';

describe('webhook secrets at rest', () => {
  const key = parseSecretKey('ab'.repeat(32));

  it('sealed with AES-256-GCM: the stored form does not hold the secret, and opens to it', () => {
    const box = createSecretBox(key);
    const secret = generateSecret();
    const stored = box.seal(secret);
    expect(stored).to.match(/^v1:/);
    expect(stored).to.not.include(secret.slice('whsec_'.length, 20));
    expect(box.seal(secret)).to.not.equal(stored); // a fresh IV each time
    expect(box.open(stored)).to.equal(secret);
  });

  it('another key, no key, or a changed byte cannot open it', () => {
    const stored = createSecretBox(key).seal('whsec_abc');
    expect(() => createSecretBox(parseSecretKey('cd'.repeat(32))).open(stored)).to.throw(/cannot be decrypted/);
    expect(() => createSecretBox(null).open(stored)).to.throw(/WEBHOOK_SECRET_KEY is not set/);
    const tampered = stored.slice(0, -2) + (stored.endsWith('A') ? 'B' : 'A') + stored.slice(-1);
    expect(() => createSecretBox(key).open(tampered)).to.throw(/cannot be decrypted/);
  });

  it('without a key it is stored as is, and still opens with a key set later', () => {
    const stored = createSecretBox(null).seal('whsec_abc');
    expect(stored).to.equal('plain:whsec_abc');
    expect(createSecretBox(key).open(stored)).to.equal('whsec_abc');
  });

  it('WEBHOOK_SECRET_KEY: 64 hex digits or base64 of 32 bytes', () => {
    expect(parseSecretKey(Buffer.alloc(32, 7).toString('base64'))).to.deep.equal(Buffer.alloc(32, 7));
    expect(() => parseSecretKey('short')).to.throw(/32 bytes/);
  });
});

describe('webhook retry backoff', () => {
  it('doubles from WEBHOOK_BACKOFF_MS and stops growing at an hour', () => {
    expect([1, 2, 3, 4].map((a) => backoffDelay(10_000, a))).to.deep.equal([10_000, 20_000, 40_000, 80_000]);
    expect(backoffDelay(10_000, 12)).to.equal(3_600_000);
    expect(backoffDelay(10_000, 1000)).to.equal(3_600_000);
  });
});
