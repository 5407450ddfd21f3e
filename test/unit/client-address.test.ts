import { expect } from 'chai';
import { clientAddressResolver, normalizeAddress } from '../../api/middleware/client-address.js';
import { parseTrustProxy } from '../../shared/index.js';

const resolver = (setting: string | null) => clientAddressResolver(setting === null ? null : parseTrustProxy(setting));

describe('client address (TRUST_PROXY)', () => {
  it('normalizes the forms a socket or a proxy writes an address in', () => {
    expect(normalizeAddress('::ffff:10.1.2.3')).to.equal('10.1.2.3');
    expect(normalizeAddress('203.0.113.9:52114')).to.equal('203.0.113.9');
    expect(normalizeAddress('[2001:DB8::1]:443')).to.equal('2001:db8::1');
    expect(normalizeAddress(' 2001:db8::2 ')).to.equal('2001:db8::2');
    for (const junk of ['unknown', '', 'evil.example', '1.2.3.4.5', '_hidden'])
      expect(normalizeAddress(junk)).to.equal(null);
  });

  it('off: the socket peer, whatever X-Forwarded-For says', () => {
    const resolve = resolver(null);
    expect(resolve('::ffff:10.0.0.5', '1.1.1.1')).to.equal('10.0.0.5');
    expect(resolve('10.0.0.5', undefined)).to.equal('10.0.0.5');
  });

  it('a hop count: the address the farthest trusted proxy appended; what the client wrote before it is ignored', () => {
    expect(resolver('1')('10.0.0.5', '6.6.6.6, 203.0.113.9')).to.equal('203.0.113.9');
    expect(resolver('2')('10.0.0.5', '6.6.6.6, 203.0.113.9, 198.51.100.1')).to.equal('203.0.113.9');
    // fewer entries than hops: the leftmost one
    expect(resolver('3')('10.0.0.5', '203.0.113.9')).to.equal('203.0.113.9');
    // no header, or a garbled entry where the proxy's should be: the peer
    expect(resolver('1')('10.0.0.5', undefined)).to.equal('10.0.0.5');
    expect(resolver('1')('10.0.0.5', ' , ')).to.equal('10.0.0.5');
    expect(resolver('1')('10.0.0.5', '203.0.113.9, garbage')).to.equal('10.0.0.5');
  });

  it('addresses: X-Forwarded-For counts only when it came through a trusted proxy, and only up to the first untrusted hop', () => {
    const resolve = resolver('10.0.0.0/8, 2001:db8::/32');
    // straight from a client: its header is not believed
    expect(resolve('203.0.113.9', '1.2.3.4')).to.equal('203.0.113.9');
    // through the load balancer
    expect(resolve('::ffff:10.0.0.5', '203.0.113.9')).to.equal('203.0.113.9');
    // a forged entry left of the real client is never reached
    expect(resolve('10.0.0.5', '6.6.6.6, 203.0.113.9')).to.equal('203.0.113.9');
    // two trusted hops, one of them IPv6
    expect(resolve('10.0.0.5', '203.0.113.9, 2001:db8::7')).to.equal('203.0.113.9');
    // every hop trusted: the leftmost
    expect(resolve('10.0.0.5', '10.9.9.9')).to.equal('10.9.9.9');
    // a garbled entry stops the walk at the last good hop
    expect(resolve('10.0.0.5', '203.0.113.9, nonsense')).to.equal('10.0.0.5');
    expect(resolver('192.168.1.7')('192.168.1.8', '203.0.113.9')).to.equal('192.168.1.8');
    expect(resolver('192.168.1.7')('192.168.1.7', '203.0.113.9:4711')).to.equal('203.0.113.9');
  });
});
