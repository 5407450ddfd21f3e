import net from 'node:net';
import type { Middleware } from 'koa';
import type { TrustProxy } from '../../shared/index.js';

/** A plain IP address out of a socket's or a forwarded entry's form: IPv4-mapped IPv6, brackets and ports removed. */
export function normalizeAddress(text: string): string | null {
  let value = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed) value = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(value)) value = value.slice(0, value.lastIndexOf(':'));
  if (value.toLowerCase().startsWith('::ffff:') && net.isIPv4(value.slice(7))) value = value.slice(7);
  return net.isIP(value) === 0 ? null : value.toLowerCase();
}

/** Trusts an address in any of the listed addresses and subnets. */
function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}

/**
 * How the client's address is found: the socket's peer, unless that peer is a trusted
 * proxy, in which case X-Forwarded-For is read from its right (each proxy appends the
 * address it saw), past every trusted hop, to the first address no trusted proxy vouches
 * for. Entries left of that are whatever the client wrote and are never used. An entry
 * that is not an IP address ends the walk at the last hop that gave a valid one.
 */
export function clientAddressResolver(
  trust: TrustProxy | null,
): (socketAddress: string | undefined, forwardedFor: string | undefined) => string {
  const trusted = trust && 'addresses' in trust ? addressMatcher(trust.addresses) : null;
  return (socketAddress, forwardedFor) => {
    const peer = normalizeAddress(socketAddress ?? '') ?? socketAddress ?? '';
    if (trust === null || !forwardedFor) return peer;
    const forwarded = forwardedFor
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean);
    if (forwarded.length === 0) return peer;
    if ('hops' in trust) {
      // the nearest `hops` proxies are trusted, whoever they are: the entry the farthest one appended
      return normalizeAddress(forwarded[Math.max(forwarded.length - trust.hops, 0)]!) ?? peer;
    }
    let client = peer;
    for (let i = forwarded.length - 1; i >= 0 && trusted!(client); i--) {
      const next = normalizeAddress(forwarded[i]!);
      if (next === null) break;
      client = next;
    }
    return client;
  };
}

/**
 * Sets `ctx.ip` to the client's address (see clientAddressResolver), so the rate limits,
 * the failed-key limit and the request log all count and name the same client. Without
 * TRUST_PROXY it is the socket's peer and X-Forwarded-For is ignored.
 */
export function clientAddress(trust: TrustProxy | null): Middleware {
  const resolve = clientAddressResolver(trust);
  return async (ctx, next) => {
    ctx.request.ip = resolve(ctx.req.socket.remoteAddress, ctx.get('X-Forwarded-For') || undefined);
    await next();
  };
}
