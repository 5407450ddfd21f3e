import { expect } from 'chai';
import { generateSecret, secretKey, signPayload, webhookHeaders } from '../../shared/index.js';

describe('Standard Webhooks signing', () => {
  it("matches the specification's own test vector", () => {
    // the reference library's "sign function works" case
    const signature = signPayload(
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    expect(signature).to.equal('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('decodes a whsec_ secret and uses any other secret as its UTF-8 bytes', () => {
    expect(secretKey('whsec_AAEC').equals(Buffer.from([0, 1, 2]))).to.equal(true);
    expect(secretKey('plain-é').equals(Buffer.from('plain-é', 'utf8'))).to.equal(true);
  });

  it('signs with every secret of a rotation, space-separated', () => {
    const both = signPayload(['whsec_AAEC', 'other'], 'id', 1, '{}');
    expect(both.split(' ')).to.deep.equal([
      signPayload('whsec_AAEC', 'id', 1, '{}'),
      signPayload('other', 'id', 1, '{}'),
    ]);
  });

  it('builds the three headers; without a secret, no signature', () => {
    const headers = webhookHeaders('whsec_AAEC', 'msg-1', '{"a":1}', 1_700_000_000_999);
    expect(headers).to.deep.equal({
      'webhook-id': 'msg-1',
      'webhook-timestamp': '1700000000',
      'webhook-signature': signPayload('whsec_AAEC', 'msg-1', 1_700_000_000, '{"a":1}'),
    });
    expect(webhookHeaders(null, 'msg-1', '{}', 0)).to.deep.equal({ 'webhook-id': 'msg-1', 'webhook-timestamp': '0' });
  });

  it('generates whsec_ secrets of 32 random bytes', () => {
    const a = generateSecret();
    expect(a).to.match(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(secretKey(a)).to.have.length(32);
    expect(generateSecret()).to.not.equal(a);
  });
});
