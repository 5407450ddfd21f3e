import dns from 'node:dns/promises';
import net from 'node:net';

/**
 * The SSRF guard for webhook URLs: http(s) only, and every address the host resolves to
 * must be a public one. Checked when a subscription is made or changed and again before
 * every send, since a name may point elsewhere later.
 */

/** Why a URL is refused; `kind` separates a refusal (permanent) from a name that does not resolve now. */
export class UnsafeUrlError extends Error {
  constructor(
    readonly kind: 'scheme' | 'address' | 'unresolved',
    message: string,
  ) {
    super(message);
    this.name = 'UnsafeUrlError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

// address ranges no webhook may reach: loopback, private, link-local, unique-local,
// multicast, the unspecified and reserved ranges, and IPv6 forms that carry an IPv4 address
const FORBIDDEN: ReadonlyArray<[string, number, 'ipv4' | 'ipv6', string]> = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'private'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'private'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::ffff:0:0', 96, 'ipv6', 'IPv4-mapped'],
  ['::', 96, 'ipv6', 'IPv4-compatible'],
  ['64:ff9b::', 96, 'ipv6', 'IPv4-translated'],
  ['2002::', 16, 'ipv6', '6to4'],
  ['fc00::', 7, 'ipv6', 'unique-local'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const rules = FORBIDDEN.map(([address, prefix, type, kind]) => {
  const list = new net.BlockList();
  list.addSubnet(address, prefix, type);
  return { list, type, kind };
});

/** The kind of range a literal address falls in (`loopback`, `private`, …), or null for a public one. */
export function forbiddenAddressKind(address: string): string | null {
  const family = net.isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const rule of rules) if (rule.type === type && rule.list.check(address, type)) return rule.kind;
  return null;
}

export type Lookup = (host: string) => Promise<string[]>;

const systemLookup: Lookup = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface UrlGuardOptions {
  /** WEBHOOK_ALLOW_PRIVATE_URLS: skip the address check (a receiver on this machine or network) */
  allowPrivate: boolean;
  lookup?: Lookup;
}

/** Throws UnsafeUrlError unless `url` is http(s) and resolves to public addresses only. */
export async function checkWebhookUrl(url: string, { allowPrivate, lookup = systemLookup }: UrlGuardOptions) {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UnsafeUrlError('scheme', 'is not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UnsafeUrlError('scheme', 'must be an http or https URL');
  }
  if (allowPrivate) return;
  // the URL parser has already turned 0x7f.1, 2130706433 and the like into dotted form
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = await lookup(host);
    } catch (err) {
      throw new UnsafeUrlError(
        'unresolved',
        `host ${host} does not resolve (${(err as { code?: string }).code ?? 'error'})`,
      );
    }
  }
  for (const address of addresses) {
    const kind = forbiddenAddressKind(address);
    if (kind) throw new UnsafeUrlError('address', `host ${host} resolves to a ${kind} address (${address})`);
  }
}
