/**
 * JSON text in one canonical form: object keys sorted (by UTF-16 code units, as
 * JSON.stringify's own order is insertion order), no whitespace. Two documents that are
 * the same JSON value give the same text, whatever their key order or spacing; array
 * order is kept, since it is part of the value.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    // defineProperty: a "__proto__" key is data here, as JSON.parse made it
    Object.defineProperty(sorted, key, {
      value: sortKeys((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return sorted;
}
