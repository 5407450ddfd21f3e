import { expect } from 'chai';
import { checkWebhookUrl, forbiddenAddressKind, UnsafeUrlError } from '../../shared/index.js';

describe('the webhook URL guard', () => {
  const CLASSES: Array<[string, string | null]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['100.64.0.1', 'private'],
    ['198.18.0.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fdff:ffff::1', 'unique-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped'],
    ['::ffff:10.0.0.1', 'IPv4-mapped'],
    ['::ffff:8.8.8.8', 'IPv4-mapped'],
    ['::127.0.0.1', 'IPv4-compatible'],
    ['64:ff9b::7f00:1', 'IPv4-translated'],
    ['2002:7f00:1::1', '6to4'],
    // public ones
    ['8.8.8.8', null],
    ['172.32.0.1', null],
    ['100.128.0.1', null],
    ['2001:4860:4860::8888', null],
    ['2606:4700::1111', null],
  ];
  for (const [address, kind] of CLASSES) {
    it(`${address}: ${kind ?? 'public'}`, () => {
      expect(forbiddenAddressKind(address)).to.equal(kind);
    });
  }

  it('only http and https', async () => {
    for (const url of ['ftp://example.com/', 'file:///etc/passwd', 'javascript:alert(1)', 'gopher://x/', 'nope']) {
      const err = await checkWebhookUrl(url, { allowPrivate: true }).catch((e: unknown) => e);
      expect(err, url).to.be.instanceOf(UnsafeUrlError);
      expect((err as UnsafeUrlError).kind).to.equal('scheme');
    }
  });

  it('resolves names: a name with one private address among public ones is refused', async () => {
    const lookup = async (host: string) => (host === 'mixed.test' ? ['93.184.216.34', '10.0.0.5'] : ['93.184.216.34']);
    await checkWebhookUrl('https://public.test/hook', { allowPrivate: false, lookup });
    const err = (await checkWebhookUrl('https://mixed.test/hook', { allowPrivate: false, lookup }).catch(
      (e: unknown) => e,
    )) as UnsafeUrlError;
    expect(err.kind).to.equal('address');
    expect(err.message).to.equal('host mixed.test resolves to a private address (10.0.0.5)');
  });

  it('localhost, resolved by the system, is loopback; WEBHOOK_ALLOW_PRIVATE_URLS lets it through', async () => {
    const err = (await checkWebhookUrl('http://localhost:8080/', { allowPrivate: false }).catch(
      (e: unknown) => e,
    )) as UnsafeUrlError;
    expect(err.kind).to.equal('address');
    expect(err.message).to.match(/^host localhost resolves to a loopback address/);
    await checkWebhookUrl('http://localhost:8080/', { allowPrivate: true });
  });

  it('numeric and bracketed forms are read as the URL parser reads them', async () => {
    for (const url of ['http://0x7f000001/', 'http://017700000001/', 'http://127.1/', 'http://[0:0:0:0:0:0:0:1]/']) {
      const err = (await checkWebhookUrl(url, { allowPrivate: false }).catch((e: unknown) => e)) as UnsafeUrlError;
      expect(err.message, url).to.include('loopback');
    }
  });

  it('a name that does not resolve is "unresolved", not refused', async () => {
    const lookup = async () => {
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    const err = (await checkWebhookUrl('https://gone.test/', { allowPrivate: false, lookup }).catch(
      (e: unknown) => e,
    )) as UnsafeUrlError;
    expect(err.kind).to.equal('unresolved');
    expect(err.message).to.equal('host gone.test does not resolve (ENOTFOUND)');
  });
});
