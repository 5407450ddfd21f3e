/**
 * The path as a router might resolve it, for prefix checks that must not be sidestepped
 * by case, percent-encoding or doubled slashes: `/%41dmin//queues` is `/admin/queues`.
 */
export function normalisedPath(path: string): string {
  // ASCII escapes only, one by one: the prefixes are ASCII, and a malformed escape
  // elsewhere in the path must not stop the rest from being decoded
  const decoded = path.replace(/%([0-7][0-9a-f])/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return decoded.replace(/\/{2,}/g, '/').toLowerCase();
}

/**
 * A matcher for "one of these prefixes or anything under it": it answers the prefix a
 * path falls under (after normalisation), or null.
 */
export function prefixMatcher(prefixes: readonly string[]): (path: string) => string | null {
  const normalised = prefixes.map((p) => p.toLowerCase().replace(/\/+$/, ''));
  return (path) => {
    const candidate = normalisedPath(path);
    return normalised.find((p) => candidate === p || candidate.startsWith(`${p}/`)) ?? null;
  };
}
