/** The longest error text stored on a record or its history row, in UTF-16 code units. */
export const MAX_ERROR_TEXT = 2000;

// PostgreSQL's text refuses NUL; a lone surrogate has no UTF-8 form, and drivers would store U+FFFD instead
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * An error text as a record stores it: valid text of at most MAX_ERROR_TEXT characters,
 * whatever a processor threw. The cut never splits a surrogate pair.
 */
export function storableErrorText(text: string): string {
  const clean = text.replace(UNSTORABLE, '');
  if (clean.length <= MAX_ERROR_TEXT) return clean;
  const end = isHighSurrogate(clean.charCodeAt(MAX_ERROR_TEXT - 1)) ? MAX_ERROR_TEXT - 1 : MAX_ERROR_TEXT;
  return clean.slice(0, end);
}

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
